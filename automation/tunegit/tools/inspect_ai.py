"""inspect-ai backend: one eval/<stem>.slurm (+ its task-config JSON) per evaluation.

The system prompt and the dataset path reach the task through a JSON file
passed with ``--task-config``, never through ``-T key=value`` (which inspect
parses as YAML) nor through a shell line. At run time the script picks the
model (a fixed epoch, the base model, or the best epoch by validation loss),
runs ``inspect eval`` and then ``python3 -m tunegit.tools.inspect_ai check
LOG_DIR``, which fails unless the newest log has status ``success`` (inspect
itself exits 0 when a task errors).
"""

from __future__ import annotations

import dataclasses
import json
import math
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from tunegit.errors import TunegitError
from tunegit.core.expand import Evaluation, Run
from tunegit.spec.plan import EvalTask
from tunegit.render.templating import render_template
from tunegit.tools import torchtune
from tunegit.tools.base import RenderContext
from tunegit.tools.slurm_header import header_context

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
    return torchtune.checkpoint_dir(ctx, run, int(evaluation.epoch))


def render_evaluation(ctx: RenderContext, run: Run, evaluation: Evaluation) -> dict[str, str]:
    """``{<run>/eval/<stem>.slurm: script, <run>/eval/<stem>.task.json: task arguments}``."""
    stem = f"{run.name}/eval/{evaluation.file_stem}"
    return {
        f"{stem}.slurm": render_template("slurm/eval.slurm.j2",
                                         **script_values(ctx, run, evaluation)),
        f"{stem}.task.json": json.dumps(task_arguments(ctx, run, evaluation), indent=2,
                                        sort_keys=True) + "\n",
    }


def task_arguments(ctx: RenderContext, run: Run, evaluation: Evaluation) -> dict[str, str]:
    """The task's parameters, identical system prompt to training."""
    return {"data_file": ctx.dataset_path(evaluation.dataset), "split": evaluation.split,
            "system_prompt": run.system_prompt}


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
    checkpoints = torchtune.output_dir(ctx, run)
    return {
        **header, "run_dir": directory, "repo_root": ctx.repo_root,
        "log_dir": eval_log_dir(ctx, run, evaluation),
        "best_epoch": path is None, "checkpoints": _plain(checkpoints, "checkpoint directory"),
        "model_path": _plain(path, "model directory") if path else "",
        "task_spec": task_spec(evaluation, task),
        "task_config": task_config_file(ctx, run, evaluation),
        "device": ctx.site.device, "max_tokens": task.max_tokens, "seed": run.seed,
    }


# --- run time --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EvalResult:
    """The newest inspect log of one evaluation, read from its header."""

    status: str  # success | error | cancelled | started | missing
    score: float | None
    metric_name: str
    log_path: str
    samples: int
    error: str


def read_eval_result(log_dir: str | Path) -> EvalResult:
    """Read the newest ``.eval`` log in ``log_dir`` (needs the train extra: inspect-ai)."""
    try:
        from inspect_ai.log import list_eval_logs, read_eval_log
    except ImportError as exc:
        raise TunegitError("inspect-ai is not installed",
                           hint="pip install -e '.[train]'") from exc
    if not Path(log_dir).is_dir():
        return EvalResult("missing", None, "", "", 0, f"no log directory {log_dir}")
    logs = list_eval_logs(str(log_dir))
    if not logs:
        return EvalResult("missing", None, "", "", 0, f"no .eval log in {log_dir}")
    newest = max(logs, key=lambda info: info.mtime or 0)
    log = read_eval_log(newest, header_only=True)
    metric, score = _first_metric(log)
    samples = log.results.completed_samples if log.results else 0
    error = log.error.message if log.error else ""
    path = newest.name.removeprefix("file://")
    return EvalResult(str(log.status), score, metric, path, samples, error)


def _first_metric(log: Any) -> tuple[str, float | None]:
    if not log.results or not log.results.scores:
        return "", None
    metrics = log.results.scores[0].metrics
    chosen = "accuracy" if "accuracy" in metrics else next(iter(metrics), "")
    return chosen, (float(metrics[chosen].value) if chosen else None)


def best_epoch_dir(checkpoints: Path) -> tuple[Path, str]:
    """The epoch with the lowest validation loss, else the last one (with why)."""
    epochs = dict(torchtune.epoch_dirs(checkpoints))
    if not epochs:
        raise TunegitError(f"no epoch_N checkpoint in {checkpoints}",
                           hint="check the fine-tuning log: did training finish?")
    losses = _validation_losses(checkpoints / "logs" / torchtune.VALIDATION_LOSS_FILE)
    known = {e: loss for e, loss in losses.items() if e in epochs and math.isfinite(loss)}
    if not known:
        last = max(epochs)
        return epochs[last], f"no validation loss recorded: using the last epoch ({last})"
    best = min(known, key=lambda e: (known[e], e))
    return epochs[best], f"epoch {best} has the lowest validation loss ({known[best]:.6f})"


def _validation_losses(path: Path) -> dict[int, float]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {int(k): float(v) for k, v in data.items()}


def check(log_dir: str) -> int:
    result = read_eval_result(log_dir)
    score = "none" if result.score is None else f"{result.score:g}"
    print(f"status={result.status} {result.metric_name or 'score'}={score} "
          f"samples={result.samples} log={result.log_path}")
    if result.status != "success":
        print(f"evaluation did not succeed: {result.error or result.status}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "check":
        return check(argv[1])
    if len(argv) == 2 and argv[0] == "best-epoch":
        path, why = best_epoch_dir(Path(argv[1]))
        print(why, file=sys.stderr)
        print(path)
        return 0
    print("usage: python3 -m tunegit.tools.inspect_ai check LOG_DIR | best-epoch CK_OUT",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except TunegitError as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        sys.exit(1)
