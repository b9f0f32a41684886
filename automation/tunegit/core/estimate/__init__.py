"""Estimates of time, GPU-hours, batch size and disk, with provenance and ranges (pure).

The formulas, as pure functions:
- training, from the repository's history when it has priors on the same kind of device
  (CPU or GPU; same model and GPU first, other models scaled by SPEED_POINTS): training
  tokens (padded: see Shape) / tokens per second, where seconds per step = a + b x tokens
  per step is fitted on the priors' steady speeds, plus startup and per-epoch checkpoint
  saves fitted on their measured wall times; every estimate names its prior runs and its
  range is the model's own error on them. Else the fallback: a 1B model's 30-60 min per
  epoch of ~8,000 examples on a GPU, scaled by model size, dataset size and device
  (marked preliminary);
- evaluation: test samples in whole batches of EVAL_BATCH x (prompt + max_tokens generated)
  tokens / (2.5 x the model's training tokens per second) + 1 minute loading; a control is
  not trained, but its model's training speed is estimated all the same, for this;
- batch size: (GPU memory / peak memory per batch) x 0.7, / packing density x 0.6;
- disk: runs x epochs x checkpoint size + 0.01 GiB per evaluation, + a 15% margin;
- wall-clock: as many jobs at once as the site runs (``jobs_at_once``), longest first.

Here the assembly (estimate_run, estimate_plan, scenarios) and its records; the parts:
``formulas`` (the formulas, their constants and tables), ``fit`` (the time model fitted on priors),
``choice`` (which priors, once per run shape). Their public names are importable from here.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

from tunegit.core.checks import DatasetInfo
from tunegit.core.estimate.choice import PriorChooser, nearest_priors
from tunegit.core.estimate.fit import (
    Fit,
    Point,
    Shape,
    fit_history,
    history_minutes,
    overhead_model,
    shape_of,
    step_model,
)
from tunegit.core.estimate.formulas import (
    CHECKPOINT_GIB,
    CPU_SLOWDOWN,
    DISK_MARGIN,
    EPOCH_MINUTES,
    EVAL_BATCH,
    EVAL_MINUTES,
    EVAL_OVERHEAD_MIN,
    FALLBACK_EXAMPLES,
    INFERENCE_SPEEDUP,
    MEMORY_POINTS,
    PACKED_SAFETY,
    SAFETY,
    SAVE_S_PER_GIB,
    SPEED_POINTS,
    STARTUP_MIN,
    ZERO,
    Span,
    disk_gib,
    eval_minutes,
    eval_tokens,
    example_tokens,
    interp,
    max_batch_size,
    packed_memory,
    packing_density,
    recommended_batch_size,
    size_ratio,
    steps_per_epoch,
    table_value,
    training_minutes,
)
from tunegit.core.expand import Evaluation, Expansion, Run
from tunegit.core.priors import PriorRun
from tunegit.spec import models
from tunegit.spec.site import Site

__all__ = [
    "DISK_MARGIN", "EVAL_BATCH", "MEMORY_POINTS", "SPEED_POINTS", "Calculation", "Fit",
    "PlanEstimate", "Point", "PriorChooser", "RunEstimate", "Scenario", "Shape", "Span",
    "device_of", "disk_gib", "estimate_plan", "estimate_run", "eval_minutes", "eval_tokens",
    "example_tokens", "fit_history", "history_minutes", "jobs_at_once", "max_batch_size",
    "nearest_priors", "overhead_model", "packed_memory", "packing_density",
    "recommended_batch_size", "scenarios", "shape_of", "size_ratio", "step_model",
    "steps_per_epoch", "training_minutes",
]

# What a calculation line computes (the design log's entry for it).
TIME, BATCH, EVAL = "CALCULATE_TIME", "CALCULATE_BATCH", "CALCULATE_EVAL"


class Calculation(NamedTuple):
    action: str  # TIME, BATCH or EVAL
    text: str


@dataclasses.dataclass(frozen=True)
class RunEstimate:
    run: Run
    train_minutes: Span
    eval_minutes: Span
    evaluations: int
    gpu_hours: float
    disk_gib: float
    checkpoint_gib: float
    max_batch_size: float | None
    it_per_s: float | None
    steps_per_epoch: int | None
    source: str
    preliminary: bool
    calculations: tuple[Calculation, ...]
    device: str = "gpu"  # "cpu": the gpu_hours figures are CPU-hours

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def is_control(self) -> bool:
        return self.run.is_control

    @property
    def batch_size(self) -> int:
        return self.run.batch_size


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int  # jobs running at once, at most
    gpus: int  # GPUs they hold at once, at most (0 on a CPU site)
    train_minutes: float
    eval_minutes: float

    @property
    def total_minutes(self) -> float:
        return self.train_minutes + self.eval_minutes


@dataclasses.dataclass(frozen=True)
class PlanEstimate:
    runs: tuple[RunEstimate, ...]
    train_minutes: Span
    eval_minutes: Span
    gpu_hours: float
    train_gpu_hours: float
    eval_gpu_hours: float
    disk_gib: float
    checkpoint_disk_gib: float
    eval_disk_gib: float
    # Parallel (when the site runs more than one job at once), then Sequential
    scenarios: tuple[Scenario, ...]
    preliminary: bool
    device: str = "gpu"  # "cpu": the gpu_hours figures are CPU-hours

    def run(self, name: str) -> RunEstimate:
        return self._by_name[name]

    @property
    def parallel(self) -> Scenario | None:
        return self.scenarios[0] if len(self.scenarios) > 1 else None

    @property
    def sequential(self) -> Scenario:
        return self.scenarios[-1]

    @property
    def disk_margin_gib(self) -> float:
        return self.disk_gib - self.checkpoint_disk_gib - self.eval_disk_gib

    @functools.cached_property
    def _by_name(self) -> dict[str, RunEstimate]:
        return {r.name: r for r in reversed(self.runs)}


def device_of(site: Site) -> str:
    return "cpu" if site.gpu.type == "cpu" or site.device == "cpu" else "gpu"


def estimate_run(run: Run, evals: Sequence[Evaluation], site: Site, priors: Sequence[PriorRun],
                 datasets: dict[str, DatasetInfo], chooser: PriorChooser | None = None,
                 ) -> RunEstimate:
    """One run's estimate; ``chooser`` (estimate_plan's) shares choices across a plan's runs.

    A control is not trained: no training time, checkpoints or batch ceiling; its model's
    training speed is still estimated (and not shown), because it paces the evaluations.
    """
    calc: list[Calculation] = []
    info = datasets.get(run.dataset)
    params = models.params_billions(run.model)
    device = device_of(site)
    chooser = chooser or PriorChooser(priors, site.gpu.type, device, fit_history)
    chosen = chooser.nearest(run)
    ckpt = _checkpoint_gib(run, chosen)
    training: list[Calculation] = []
    speed = _train_time(run, info, chooser, device, ckpt, training)
    if run.is_control:
        train, steps, max_bs, source = ZERO, None, None, "base model: evaluation only"
        calc.append(Calculation(TIME, f"{run.name}: a control: the base model is evaluated as "
                                      "it is, no training to estimate"))
    else:
        train, steps = speed.minutes, speed.steps
        calc += training
        max_bs, memory_note = _max_batch(run, site, chooser.memory_prior(run), info, calc)
        source = speed.source + memory_note
    ev_total = ZERO
    for task, group in _by_task(evals).items():
        one, text = _eval_time(run, group[0], datasets, speed.tokens_per_s, params)
        ev_total = ev_total + one.scale(len(group))
        each = f", x {len(group)} evaluations (one per epoch)" if len(group) > 1 else ""
        calc.append(Calculation(EVAL, f"{run.name}: {task}: {text}{each}"))
    epochs_saved = 0 if run.is_control else run.epochs
    total_disk, _, _ = disk_gib([(1, epochs_saved, ckpt)], len(evals))
    # Evaluation jobs ask for one GPU; a fine-tune for the plan's training.gpus.
    gpu_h = (train.value * run.gpus + ev_total.value) / 60.0
    unit = "CPU" if device == "cpu" else "GPU"
    if run.is_control:
        hours = f"{ev_total.value:.1f} min evaluation x 1 {unit}"
    elif run.gpus == 1:
        hours = f"({train.value:.1f} + {ev_total.value:.1f}) min x 1 {unit}"
    else:
        hours = (f"({train.value:.1f} min x {run.gpus} {unit} + {ev_total.value:.1f} min x 1 "
                 f"{unit})")
    calc.append(Calculation(TIME, f"{unit} hours: {hours} / 60 = {gpu_h:.2f}"))
    return RunEstimate(run, train, ev_total, len(evals), gpu_h, total_disk, ckpt, max_bs,
                       speed.it_s, steps, source, speed.preliminary and not run.is_control,
                       tuple(calc), device)


class _Speed(NamedTuple):
    """A run's training estimate: its minutes and the speed they imply."""

    minutes: Span
    it_s: float | None
    tokens_per_s: float | None  # training tokens per second; it paces the evaluations
    steps: int | None
    source: str
    preliminary: bool


def _by_task(evals: Sequence[Evaluation]) -> dict[str, list[Evaluation]]:
    out: dict[str, list[Evaluation]] = {}
    for ev in evals:
        out.setdefault(ev.task, []).append(ev)
    return out


def _train_time(run: Run, info: DatasetInfo | None, chooser: PriorChooser, device: str,
                ckpt_gib: float, calc: list[Calculation]) -> _Speed:
    shape = shape_of(run, info, device) if info else None
    chosen = chooser.nearest(run)
    if chosen and shape:
        fit = chooser.fit(run, shape)
        if fit:
            # Tiers never mix: chosen is all one model, or all others (scaled).
            scaled = chosen[0].model != run.model
            span, it_s, text = history_minutes(shape, fit, scaled)
            src = chooser.sources(run)
            calc.append(Calculation(TIME, f"{run.name}: {text} (from {src})"))
            return _Speed(span, it_s, shape.tokens_per_step * it_s, shape.steps_per_epoch, src,
                          False)
    return _fallback(run, shape, device, ckpt_gib, calc)


def _fallback(run: Run, shape: Shape | None, device: str, ckpt_gib: float,
              calc: list[Calculation]) -> _Speed:
    """The fallback table (1B: 30-60 min per epoch of ~8,000 examples on a GPU), scaled by model
    size (SPEED_POINTS), by the dataset's examples, and x20 on a CPU; plus model loading and
    checkpoint saves (~14 s per GiB, the real 1B log's 33 s)."""
    size = interp(SPEED_POINTS, models.params_billions(run.model) or 1.24)
    data = shape.samples / FALLBACK_EXAMPLES if shape else 1.0
    k = size * data * (CPU_SLOWDOWN if device == "cpu" else 1.0)
    low, high = EPOCH_MINUTES[0][1]
    fixed = STARTUP_MIN + run.epochs * ckpt_gib * SAVE_S_PER_GIB / 60.0
    span = Span((low + high) / 2 * k * run.epochs + fixed, low * k * run.epochs + fixed,
                high * k * run.epochs + fixed)
    calc.append(Calculation(TIME, (
        f"{run.name}: no prior run of {run.model} on this kind of device: fallback table "
        f"{low}-{high} min/epoch (1B, {FALLBACK_EXAMPLES} examples, GPU) x {size:.3g} "
        f"for model size x {data:.3g} for dataset size"
        + (f" x {CPU_SLOWDOWN} on CPU" if device == "cpu" else "")
        + f" x {run.epochs} epochs + {fixed:.2f} min loading and saves "
        f"= {span.value:.2f} min (preliminary)")))
    stepping_s = (span.value - fixed) * 60.0
    tokens_s = shape.train_tokens / stepping_s if shape and stepping_s > 0 else None
    return _Speed(span, None, tokens_s, shape.steps_per_epoch if shape else None,
                  "fallback table (preliminary)", True)


def _eval_time(run: Run, ev: Evaluation, datasets: dict[str, DatasetInfo],
               tokens_per_s: float | None, params: float | None) -> tuple[Span, str]:
    """One evaluation's minutes and their calculation. The prompt is taken as one example's
    tokens (input and answer: an upper bound), rounded, the generation as the task's
    max_tokens."""
    info = datasets.get(ev.dataset)
    n = info.count(ev.split) if info else None
    if info and n and tokens_per_s:
        prompt = round(example_tokens(info.mean_chars, run.system_prompt))
        m = eval_minutes(n, prompt, ev.max_tokens, tokens_per_s)
        tokens = eval_tokens(n, prompt, ev.max_tokens)
        batches = math.ceil(n / EVAL_BATCH)
        text = (f"{n} {ev.split} samples in {batches} {'batch' if batches == 1 else 'batches'} "
                f"of {EVAL_BATCH}: {batches * EVAL_BATCH:,} x ({prompt} prompt + "
                f"{ev.max_tokens} generated) tokens = {tokens:,.0f} tokens "
                f"/ ({INFERENCE_SPEEDUP} x {tokens_per_s:,.0f} training tokens/s) "
                f"+ {EVAL_OVERHEAD_MIN * 60:.0f} s loading = {m:.2f} min")
        return Span(m, m * 0.8, m * 1.5), text
    low, high = table_value(EVAL_MINUTES, params)
    why = (f"no {ev.split} samples counted in {ev.dataset}" if not n
           else "no training speed for its model")
    return (Span((low + high) / 2, low, high),
            f"{why}: fallback table {low}-{high} min per evaluation (preliminary)")


def _checkpoint_gib(run: Run, chosen: list[PriorRun]) -> float:
    same = next((p.checkpoint_gib for p in chosen if p.model == run.model and p.checkpoint_gib),
                None)
    if same:
        return float(same)
    info = models.lookup(run.model)
    if info:
        return info.checkpoint_gib
    return float(table_value(CHECKPOINT_GIB, models.params_billions(run.model)))


def _max_batch(run: Run, site: Site, prior: PriorRun | None, info: DatasetInfo | None,
               calc: list[Calculation]) -> tuple[float | None, str]:
    """The batch-size ceiling from a prior's memory; the training peak is preferred.

    A post-init figure ("GPU peak memory" printed after model init) under-reports the
    training peak (the real 1B log: 2.35 GiB after init, 18.78 GiB in training), so a ceiling
    drawn from it is said to be optimistic, in the calculation and in the source.
    """
    if site.gpu.type == "cpu" or not site.gpu.memory_gib or prior is None:
        return None, ""
    assert prior.peak_memory_gib and prior.batch_size
    per_batch = prior.peak_memory_gib / prior.batch_size * size_ratio(MEMORY_POINTS, run.model,
                                                                        prior.model)
    density = None
    if run.packed and prior.packed is False and info:
        density = packing_density(info.mean_chars, run.system_prompt, run.max_seq_len)
    result = max_batch_size(site.gpu.memory_gib, per_batch, density)
    kind = prior.peak_memory_kind or "unknown kind of"
    post = kind == "post-init"
    note = (" (only a post-init figure: it under-reports the training peak, so this maximum "
            "is optimistic)" if post else "")
    calc.append(Calculation(BATCH, (
        f"{run.name}: max batch = {site.gpu.memory_gib} GiB / {per_batch:.2f} GiB per "
        f"sample x {SAFETY}" + (f" / density {density:.1f} x {PACKED_SAFETY}" if density else "")
        + f" = {result:.1f} (from the {kind} peak of {prior.source}{note})")))
    return result, ("; max batch from a post-init memory figure, which under-reports the "
                    "training peak" if post else "")


def estimate_plan(exp: Expansion, site: Site, priors: Sequence[PriorRun],
                  datasets: dict[str, DatasetInfo], capacity: int | None = None,
                  ) -> PlanEstimate:
    """``capacity``: the jobs tunegit itself lets run at once where it queues them (the local
    executor's max_parallel); None where the site's scheduler does (see ``jobs_at_once``)."""
    # fit_history is looked up here, once per plan, so the time model is this module's.
    chooser = PriorChooser(priors, site.gpu.type, device_of(site), fit_history)
    runs = tuple(estimate_run(r, exp.evaluations_of(r.name), site, priors, datasets, chooser)
                 for r in exp.runs)
    train = sum((r.train_minutes for r in runs), ZERO)
    evals = sum((r.eval_minutes for r in runs), ZERO)
    ckpt = [(1, 0 if r.is_control else r.run.epochs, r.checkpoint_gib) for r in runs]
    total_disk, ckpt_disk, log_disk = disk_gib(ckpt, len(exp.evaluations))
    train_gh = sum(r.train_minutes.value * r.run.gpus for r in runs) / 60
    eval_gh = sum(r.eval_minutes.value for r in runs) / 60  # an evaluation job: one GPU
    return PlanEstimate(runs, train, evals, train_gh + eval_gh, train_gh, eval_gh, total_disk,
                        ckpt_disk, log_disk, scenarios(runs, site, capacity),
                        any(r.preliminary for r in runs), device_of(site))


def jobs_at_once(site: Site, gpus_per_job: int, capacity: int | None) -> int:
    """How many jobs of ``gpus_per_job`` GPUs the site runs at once: its GPUs / GPUs per job,
    and at most ``capacity`` where tunegit queues the jobs itself. On a CPU site GPUs do not
    count: ``capacity`` where given, else the site's ``gpu.count`` job slots."""
    if device_of(site) == "cpu":
        return max(1, capacity or site.gpu.count)
    slots = max(1, site.gpu.count // max(1, gpus_per_job))
    return min(slots, capacity) if capacity else slots


def scenarios(runs: Sequence[RunEstimate], site: Site,
              capacity: int | None = None) -> tuple[Scenario, ...]:
    """Sequential, one job at a time; and, when the site runs more than one at once,
    Parallel: as many at once as it runs (never more than there are jobs), longest first.
    Training, then evaluations, each phase on its own."""
    trains = [r.train_minutes.value for r in runs if not r.is_control]
    evals = [r.eval_minutes.value / max(r.evaluations, 1)
             for r in runs for _ in range(r.evaluations)]
    per_job = max((r.run.gpus for r in runs if not r.is_control), default=1)
    cpu = device_of(site) == "cpu"
    sequential = Scenario("Sequential", 1, 0 if cpu else per_job, sum(trains), sum(evals))
    train_lanes = max(1, min(jobs_at_once(site, per_job, capacity), len(trains)))
    eval_lanes = max(1, min(jobs_at_once(site, 1, capacity), len(evals)))
    jobs = max(train_lanes, eval_lanes)
    if jobs == 1:
        return (sequential,)
    gpus = 0 if cpu else max(train_lanes * per_job, eval_lanes)
    parallel = Scenario("Parallel", jobs, gpus, _batched(trains, train_lanes),
                        _batched(evals, eval_lanes))
    return parallel, sequential


def _batched(durations: Sequence[float], gpus: int) -> float:
    """Longest-first list scheduling on `gpus` identical GPUs: the makespan."""
    lanes = [0.0] * gpus
    for d in sorted(durations, reverse=True):
        lanes[lanes.index(min(lanes))] += d
    return max(lanes, default=0.0)
