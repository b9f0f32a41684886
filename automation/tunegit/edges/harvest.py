"""Metrics read on completion: training speed, memory and checkpoint size; evaluation scores.

An edge: it reads the job's own log (the file the executor wrote: SLURM's
--output, an array task's redirect, or the local executor's) and hands it to the
plan's preparation tool, which adds what its own files say (checkpoints, its
metric logs); the evaluation tool reads its own result. Both are reached through
their contracts (``tunegit.tools``), never by name. What they find goes into
runs_status.yaml, where it becomes a prior for later estimates. The same for every
executor: elapsed time comes from the scheduler's observation.

A job the scheduler calls completed can still have failed: an evaluation whose log
says it did not succeed moves on to ``failed``, and that move is a transition of the
cycle like any other (so the commit message and ``tunegit run`` say so).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunegit.core.records import Transition
from tunegit.core.states import COMPLETED, FAILED, REASON_EVAL_STATUS
from tunegit.core.status import StatusFile
from tunegit.edges.analysis import Analysis
from tunegit.errors import TunegitError
from tunegit.files import tail
from tunegit.spec import models
from tunegit.tools import RenderContext, get_evaluation, get_preparation

JOB_LOG_BYTES = 2_000_000  # a training log's progress lines: enough for a steady rate


def completed(status: StatusFile, transitions: Sequence[Transition], a: Analysis,
              ctx: RenderContext) -> tuple[StatusFile, tuple[Transition, ...]]:
    """Record what each step that completed in ``transitions`` produced.

    Returns the status and the transitions harvest itself makes (completed -> failed for
    an evaluation whose log says it did not succeed), to follow ``transitions``.
    """
    more: list[Transition] = []
    for t in transitions:
        if t.new != COMPLETED:
            continue
        if t.key is None:
            status = _finetune(status, t.run, a, ctx)
        else:
            status, moved = _evaluation(status, t, a, ctx)
            more += moved
    return status, tuple(more)


def _finetune(status: StatusFile, run_name: str, a: Analysis, ctx: RenderContext) -> StatusFile:
    run = a.expansion.run(run_name)
    step = status.step(run_name, None)
    prep = get_preparation(ctx.plan.tools.preparation)
    log_text = tail(Path(step.log), JOB_LOG_BYTES) if step.log else ""
    metrics: dict[str, Any] = {
        **prep.training_metrics(ctx, run, log_text),
        "train_minutes": round(step.elapsed_s / 60, 3) if step.elapsed_s is not None else None,
    }
    dataset = a.verification.datasets.get(run.dataset)
    config = {
        "model": run.model, "gpu_type": a.site.gpu.type, "batch_size": run.batch_size,
        "packed": run.packed, "max_seq_len": run.max_seq_len, "lora_rank": run.lora_rank,
        "epochs": run.epochs, "train_samples": dataset.count("train") if dataset else None,
        "params_b": models.params_billions(run.model),
    }
    # The estimate recorded at submission is what the run is judged against; a run
    # submitted before estimates were recorded gets today's.
    est = a.estimate.run(run_name)
    estimate = step.estimate or {"train_minutes": round(est.train_minutes.value, 3),
                                 "source": est.source}
    new = step.moved(step.status, "", output=prep.output_dir(ctx, run), metrics=_clean(metrics),
                     config=_clean(config), estimate=estimate)
    return status.with_step(run_name, None, new)


def _evaluation(status: StatusFile, t: Transition, a: Analysis, ctx: RenderContext,
                ) -> tuple[StatusFile, tuple[Transition, ...]]:
    assert t.key is not None
    run = a.expansion.run(t.run)
    ev = next(e for e in a.expansion.evaluations_of(t.run) if e.key == t.key)
    tool = get_evaluation(ctx.plan.tools.evaluation)
    log_dir = tool.eval_log_dir(ctx, run, ev)
    step = status.step(t.run, t.key)
    try:
        result = tool.read_result(ctx, run, ev)
    except TunegitError as exc:
        new = step.moved(step.status, "", output=log_dir, message=f"score not read: {exc}")
        return status.with_step(t.run, t.key, new), ()
    if not result.ok:
        # The step moved to completed this cycle: failing it keeps that time.
        new = step.moved(FAILED, step.last_updated or "", output=log_dir, reason=REASON_EVAL_STATUS,
                         message=f"eval log status {result.status}: {result.error}"[:500])
        failed = Transition(t.experiment, t.run, t.key, step.status, FAILED, t.job_id,
                            REASON_EVAL_STATUS, new.message)
        return status.with_step(t.run, t.key, new), (failed,)
    new = step.moved(step.status, "", output=result.log_path or log_dir, score=result.score,
                     metric=result.metric_name or None, samples=result.samples,
                     metrics=result.scores or None)
    return status.with_step(t.run, t.key, new), ()


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in data.items() if v is not None}
