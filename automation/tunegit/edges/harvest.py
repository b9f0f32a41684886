"""Metrics read on completion: training speed, memory and checkpoint size; evaluation scores.

An edge: it reads the job's own log (the file the executor wrote: SLURM's
--output, an array task's redirect, or the local executor's), torchtune's
DiskLogger file (``<run>/ck-out/logs/log_*.txt``: tokens/s per GPU, peak memory),
the checkpoint directories and inspect's .eval log, and records what it finds in
runs_status.yaml, where it becomes a prior for later estimates. The same for every
executor: elapsed time comes from the scheduler's observation.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunegit.spec import models
from tunegit.edges.analysis import Analysis
from tunegit.errors import TunegitError
from tunegit.core.logparse import parse_training_log
from tunegit.core.records import Transition
from tunegit.core.states import COMPLETED, FAILED, REASON_EVAL_STATUS
from tunegit.core.status import StatusFile
from tunegit.files import tail
from tunegit.tools import RenderContext, get_evaluation
from tunegit.tools.torchtune import epoch_dirs, output_dir


def dir_gib(path: Path) -> float:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return total / 2**30


def disk_log(checkpoints: Path) -> str:
    """The newest DiskLogger file of a run (a retried run writes a new one)."""
    files = sorted((checkpoints / "logs").glob("log_*.txt"), key=lambda f: f.stat().st_mtime)
    return tail(files[-1], 2_000_000) if files else ""


def completed(status: StatusFile, transitions: Sequence[Transition], a: Analysis,
              ctx: RenderContext) -> StatusFile:
    for t in transitions:
        if t.new != COMPLETED:
            continue
        if t.key is None:
            status = _finetune(status, t.run, a, ctx)
        else:
            status = _evaluation(status, t.run, t.key, a, ctx)
    return status


def _finetune(status: StatusFile, run_name: str, a: Analysis, ctx: RenderContext) -> StatusFile:
    run = a.expansion.run(run_name)
    step = status.step(run_name, None)
    log = Path(step.log) if step.log else None
    ck = Path(output_dir(ctx, run))
    text = (tail(log, 2_000_000) if log else "") + "\n" + disk_log(ck)
    stats = parse_training_log(text)
    epochs = epoch_dirs(ck) if ck.is_dir() else []
    ckpt = round(dir_gib(epochs[0][1]), 4) if epochs else None
    peak = stats.training_peak_memory_active_gib or stats.post_init_peak_memory_active_gib
    metrics: dict[str, Any] = {
        "it_per_s": stats.iterations_per_second,
        "tokens_per_s": stats.tokens_per_second_per_gpu,
        "peak_memory_gib": peak,
        "peak_memory_kind": ("training" if stats.training_peak_memory_active_gib
                             else "post-init" if peak else None),
        "checkpoint_gib": ckpt,
        "epochs_saved": len(epochs),
        "steps_per_epoch": stats.steps_per_epoch,
        "final_loss": stats.final_loss,
        "train_minutes": round(step.elapsed_s / 60, 3) if step.elapsed_s is not None else None,
    }
    if stats.validation_loss:
        metrics["validation_loss"] = {str(e): v for e, v in stats.validation_loss}
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
    new = step.moved(step.status, "", output=str(ck), metrics=_clean(metrics),
                     config=_clean(config), estimate=estimate)
    return status.with_step(run_name, None, new)


def _evaluation(status: StatusFile, run_name: str, key: str, a: Analysis,
                ctx: RenderContext) -> StatusFile:
    run = a.expansion.run(run_name)
    ev = next(e for e in a.expansion.evaluations_of(run_name) if e.key == key)
    log_dir = get_evaluation(ctx.plan.tools.evaluation).eval_log_dir(ctx, run, ev)
    step = status.step(run_name, key)
    try:
        from tunegit.tools.inspect_ai import read_eval_result

        result = read_eval_result(log_dir)
    except TunegitError as exc:
        new = step.moved(step.status, "", output=log_dir, message=f"score not read: {exc}")
        return status.with_step(run_name, key, new)
    if result.status != "success":
        new = step.moved(FAILED, step.last_updated or "", output=log_dir, reason=REASON_EVAL_STATUS,
                         message=f"eval log status {result.status}: {result.error}"[:500])
        return status.with_step(run_name, key, new)
    new = step.moved(step.status, "", output=result.log_path or log_dir, score=result.score,
                     metric=result.metric_name or None)
    return status.with_step(run_name, key, new)


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in data.items() if v is not None}
