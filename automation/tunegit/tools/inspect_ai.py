"""inspect-ai backend: one eval/<stem>.slurm (+ its task-config JSON) per evaluation.

The system prompt and the dataset path reach the task through a JSON file
passed with ``--task-config``, never through ``-T key=value`` (which inspect
parses as YAML) nor through a shell line. The model is the base model or a
checkpoint the preparation tool names (``RenderContext.preparation``): a fixed
epoch's directory, or for ``best`` the command it gives that picks one at run
time. The script runs ``inspect eval`` and then ``python3 -m
tunegit.tools.inspect_ai check LOG_DIR``, which fails unless the newest log has
status ``success`` (inspect itself exits 0 when a task errors). After the job,
``read_result`` reads that log: its status and every scorer's metrics;
``read_sample_scores`` reads every sample's score from it, for the intervals.
"""

from __future__ import annotations

import json
import posixpath
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegit.core.expand import Evaluation, Run
from tunegit.core.taskargs import fill
from tunegit.errors import TunegitError
from tunegit.render.templating import render_template
from tunegit.spec.plan import EvalTask
from tunegit.tools.base import EVAL_MISSING, EvalResult, RenderContext
from tunegit.tools.slurm_header import header_context
from tunegit.version import install_hint

if TYPE_CHECKING:
    from tunegit.core.results import SampleTable

name = "inspect-ai"
BEST = "best"
# -M model_path=... is parsed as YAML by inspect: keep model paths to plain characters.
_PLAIN_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")


def eval_dir(ctx: RenderContext, run: Run) -> str:
    return posixpath.join(ctx.run_dir(run), "eval")


def eval_script(ctx: RenderContext, run: Run, evaluation: Evaluation) -> str:
    return posixpath.join(eval_dir(ctx, run), f"{evaluation.file_stem}.slurm")


def task_config_file(ctx: RenderContext, run: Run, evaluation: Evaluation) -> str:
    return posixpath.join(eval_dir(ctx, run), f"{evaluation.file_stem}.task.json")


def eval_log_dir(ctx: RenderContext, run: Run, evaluation: Evaluation) -> str:
    """Where inspect writes this evaluation's .eval logs."""
    return posixpath.join(eval_dir(ctx, run), "logs", evaluation.file_stem)


def model_path(ctx: RenderContext, run: Run, evaluation: Evaluation) -> str | None:
    """The model directory to evaluate; None when it is chosen at run time (``best``)."""
    if run.is_control or evaluation.epoch is None:
        return ctx.base_model_dir(run)
    if evaluation.epoch == BEST:
        return None
    return ctx.preparation.checkpoint_dir(ctx, run, int(evaluation.epoch))


def render_evaluation(ctx: RenderContext, run: Run, evaluation: Evaluation) -> dict[str, str]:
    """``{<run>/eval/<stem>.slurm: script, <run>/eval/<stem>.task.json: task arguments}``."""
    stem = f"{run.name}/eval/{evaluation.file_stem}"
    return {
        f"{stem}.slurm": render_template("slurm/eval.slurm.j2",
                                         **script_values(ctx, run, evaluation)),
        f"{stem}.task.json": json.dumps(task_arguments(ctx, run, evaluation), indent=2,
                                        sort_keys=True) + "\n",
    }


def task_arguments(ctx: RenderContext, run: Run, evaluation: Evaluation) -> dict[str, Any]:
    """The task's parameters: the plan's ``args`` with their placeholders filled in, else
    tunegit's own three; the system prompt identical to training's."""
    values = {"dataset_path": ctx.dataset_path(evaluation.dataset), "split": evaluation.split,
              "system_prompt": run.system_prompt}
    task = plan_task(ctx, evaluation)
    if task.args is None:
        return {"data_file": values["dataset_path"], "split": evaluation.split,
                "system_prompt": run.system_prompt}
    return fill(task.args, {**values, "max_tokens": task.max_tokens})


def plan_task(ctx: RenderContext, evaluation: Evaluation) -> EvalTask:
    for task in ctx.plan.evaluation.tasks:
        if task.name == evaluation.task:
            return task
    raise TunegitError(f"evaluation {evaluation.key}: task {evaluation.task!r} is not in the plan",
                       hint="list it under evaluation.tasks")


def task_spec(evaluation: Evaluation, task: EvalTask) -> str:
    """``<repo-relative script>[@<task>]``; the script must stay inside the repository."""
    script = posixpath.normpath(evaluation.script)
    if script.startswith(("/", "../")) or script == "..":
        raise TunegitError(f"evaluation task {task.name}: script {evaluation.script!r} must be "
                           "a path inside the repository", hint="write it repository-relative")
    return f"{script}@{task.task}" if task.task else script


def _plain(path: str, what: str) -> str:
    if not _PLAIN_PATH.match(path):
        raise TunegitError(f"{what} {path!r}: inspect reads model paths as YAML, so only "
                           "letters, digits and ._/+- are allowed",
                           hint="move the site's output_dir/models_dir to a plain path")
    return path


def script_values(ctx: RenderContext, run: Run, evaluation: Evaluation) -> dict[str, Any]:
    task = plan_task(ctx, evaluation)
    directory = ctx.run_dir(run)
    path = model_path(ctx, run, evaluation)
    header = header_context(ctx, ctx.eval_job(run, evaluation,
                                              eval_script(ctx, run, evaluation)))
    return {
        **header, "run_dir": directory, "repo_root": ctx.repo_root,
        "log_dir": eval_log_dir(ctx, run, evaluation),
        "best_epoch": best_epoch_command(ctx, run) if path is None else [],
        "model_path": _plain(path, "model directory") if path else "",
        "evaluable": [] if run.is_control or evaluation.epoch is None
        else ctx.preparation.evaluable_command(ctx, run),
        "view_dir": _plain(posixpath.join(eval_dir(ctx, run), f"model-{evaluation.file_stem}"),
                           "model directory"),
        "task_spec": task_spec(evaluation, task),
        "task_config": task_config_file(ctx, run, evaluation),
        "device": ctx.site.device, "max_tokens": task.max_tokens, "seed": run.seed,
    }


def best_epoch_command(ctx: RenderContext, run: Run) -> list[str]:
    """The preparation tool's command that prints the best epoch's model directory."""
    for epoch in range(run.epochs):  # whichever it prints must be a plain path
        _plain(ctx.preparation.checkpoint_dir(ctx, run, epoch), "checkpoint directory")
    return ctx.preparation.best_checkpoint_command(ctx, run)


# --- run time --------------------------------------------------------------------------

def read_result(ctx: RenderContext, run: Run, evaluation: Evaluation) -> EvalResult:
    return read_eval_result(eval_log_dir(ctx, run, evaluation))


def _not_installed() -> TunegitError:
    return TunegitError("inspect-ai is not installed", hint=install_hint("train"))


def read_eval_result(log_dir: str | Path) -> EvalResult:
    """Read the newest ``.eval`` log in ``log_dir`` (needs the train extra: inspect-ai)."""
    try:
        from inspect_ai.log import list_eval_logs, read_eval_log
    except ImportError as exc:
        raise _not_installed() from exc
    if not Path(log_dir).is_dir():
        return _missing(f"no log directory {log_dir}")
    logs = list_eval_logs(str(log_dir))
    if not logs:
        return _missing(f"no .eval log in {log_dir}")
    newest = max(logs, key=lambda info: info.mtime or 0)
    log = read_eval_log(newest, header_only=True)
    scores = all_scores(log)
    metric, score = headline(scores)
    return EvalResult(
        status=str(log.status), scores=scores, metric_name=metric, score=score,
        log_path=newest.name.removeprefix("file://"),
        samples=log.results.completed_samples if log.results else 0,
        error=log.error.message if log.error else "")


def _missing(why: str) -> EvalResult:
    return EvalResult(EVAL_MISSING, {}, "", None, "", 0, why)


def all_scores(log: Any) -> dict[str, dict[str, float]]:
    """Every scorer's metrics, in the log's order (inspect names repeated scorers apart)."""
    if not log.results:
        return {}
    return {s.name: {name: float(m.value) for name, m in s.metrics.items()}
            for s in log.results.scores}


def headline(scores: dict[str, dict[str, float]]) -> tuple[str, float | None]:
    """The first scorer's accuracy, else its first metric: the score tables show."""
    metrics = next(iter(scores.values()), {})
    chosen = "accuracy" if "accuracy" in metrics else next(iter(metrics), "")
    return chosen, (metrics[chosen] if chosen else None)


def read_sample_scores(log: str) -> SampleTable | None:
    """Every scorer's value per sample id, from the ``.eval`` log ``log`` or the newest one in
    the directory ``log``; None when there is none. inspect's ``value_to_float`` reads the
    values (C/I as 1/0); a sample scored in several epochs gets its mean; a scorer with a dict
    value gives one ``scorer/key`` column per key; samples that errored have no score."""
    try:
        from inspect_ai.log import list_eval_logs, read_eval_log_sample_summaries
        from inspect_ai.scorer import value_to_float
    except ImportError as exc:
        raise _not_installed() from exc
    path = Path(log)
    if path.is_dir():
        logs = list_eval_logs(str(path))
        if not logs:
            return None
        path = Path(max(logs, key=lambda info: info.mtime or 0).name.removeprefix("file://"))
    if not path.is_file():
        return None
    to_float = value_to_float()
    values: dict[str, dict[str, list[float]]] = {}
    for sample in read_eval_log_sample_summaries(str(path)):
        if sample.error or not sample.scores:
            continue
        for scorer, score in sample.scores.items():
            for name, value in _named_values(scorer, score.value):
                values.setdefault(name, {}).setdefault(str(sample.id), []).append(
                    to_float(value))
    return {name: {sid: sum(v) / len(v) for sid, v in per_id.items()}
            for name, per_id in values.items()}


def _named_values(scorer: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [(f"{scorer}/{k}", v) for k, v in value.items() if v is not None]
    if isinstance(value, list | tuple):
        return []  # a list of values has no one score per sample
    return [(scorer, value)]


def check(log_dir: str) -> int:
    result = read_eval_result(log_dir)
    score = "none" if result.score is None else f"{result.score:g}"
    print(f"status={result.status} {result.metric_name or 'score'}={score} "
          f"samples={result.samples} log={result.log_path}")
    if not result.ok:
        print(f"evaluation did not succeed: {result.error or result.status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "check":
        return check(argv[1])
    print("usage: python3 -m tunegit.tools.inspect_ai check LOG_DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except TunegitError as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        sys.exit(1)
