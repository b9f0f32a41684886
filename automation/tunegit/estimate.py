"""Estimates of time, GPU-hours, batch size and disk, with provenance and ranges.

Seed 001's formulas, as pure functions:
- training: steps/epoch = train samples / (batch x grad-accum x GPUs); time = steps / it/s
  x epochs; from the nearest prior run, scaled by model size when no prior of the
  same model exists, else the seed's fallback table (marked preliminary);
- evaluation: test samples / batch / (training it/s x 2.5) + 1 minute overhead;
- batch size: (GPU memory / peak memory per batch) x 0.7, / packing density x 0.6;
- disk: runs x epochs x checkpoint size + 10 MB per evaluation + 15%.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from typing import TypeVar

from tunegit import models
from tunegit.expand import Evaluation, Expansion, Run
from tunegit.priors import PriorRun
from tunegit.site import Site
from tunegit.verify import DatasetInfo

T = TypeVar("T")
SAFETY = 0.7
PACKED_SAFETY = 0.6
PACKED_EFFICIENCY = 0.9
INFERENCE_SPEEDUP = 2.5
EVAL_OVERHEAD_MIN = 1.0
EVAL_LOG_GIB = 0.01
DISK_MARGIN = 0.15
TEMPLATE_TOKENS = 12
CHARS_PER_TOKEN = 3.5

# Seed 001: "3B is ~2x slower than 1B, 7B ~4-5x, 8B ~5-6x"; memory "3B ~2-3x of 1B, 7B ~4-5x".
SPEED_POINTS = ((0.0001, 0.01), (1.24, 1.0), (3.21, 2.0), (7.0, 4.5), (8.03, 5.5), (70.6, 50.0))
MEMORY_POINTS = ((0.0001, 0.01), (1.24, 1.0), (3.21, 2.5), (7.0, 4.5), (8.03, 5.0), (70.6, 45.0))
# Seed 001 fallback tables (no prior data): minutes per epoch, minutes per evaluation, GiB.
EPOCH_MINUTES: tuple[tuple[float, tuple[float, float]], ...] = (
    (1.5, (30, 60)), (4.0, (60, 120)), (1e9, (180, 300)))
EVAL_MINUTES: tuple[tuple[float, tuple[float, float]], ...] = (
    (1.5, (2, 3)), (4.0, (4, 5)), (10.0, (8, 10)), (1e9, (20, 30)))
CHECKPOINT_GIB = ((1.5, 2.4), (4.0, 6.1), (10.0, 14.3), (1e9, 142.0))


@dataclasses.dataclass(frozen=True)
class Span:
    value: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> Span:
        return cls(value, value, value)

    def scale(self, k: float) -> Span:
        return Span(self.value * k, self.low * k, self.high * k)

    def __add__(self, other: Span) -> Span:
        return Span(self.value + other.value, self.low + other.low, self.high + other.high)


ZERO = Span.exact(0.0)


@dataclasses.dataclass(frozen=True)
class RunEstimate:
    name: str
    is_control: bool
    train_minutes: Span
    eval_minutes: Span
    evaluations: int
    gpu_hours: float
    disk_gib: float
    checkpoint_gib: float
    batch_size: int
    max_batch_size: float | None
    it_per_s: float | None
    steps_per_epoch: int | None
    source: str
    preliminary: bool
    calculations: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    gpus: int
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
    scenarios: tuple[Scenario, ...]
    preliminary: bool

    def run(self, name: str) -> RunEstimate:
        return self._by_name[name]

    @functools.cached_property
    def _by_name(self) -> dict[str, RunEstimate]:
        return {r.name: r for r in reversed(self.runs)}


# --- formulas (seed 001) ----------------------------------------------------------------------

def steps_per_epoch(samples: int, batch_size: int, grad_accum: int = 1, gpus: int = 1) -> int:
    return max(1, math.ceil(samples / (batch_size * grad_accum * gpus)))


def training_minutes(samples: int, batch_size: int, it_per_s: float, epochs: int,
                     grad_accum: int = 1, gpus: int = 1) -> float:
    """8000 samples, batch 4, 4.34 it/s, 2 epochs -> 2000 steps/epoch, ~7.7 min/epoch, ~15.4 min."""
    return steps_per_epoch(samples, batch_size, grad_accum, gpus) / it_per_s * epochs / 60.0


def eval_minutes(test_samples: int, batch_size: int, train_it_per_s: float) -> float:
    """10 it/s training, 1000 samples, batch 16 -> 63 steps / 25 it/s + 60 s ~ 1.04 min."""
    steps = math.ceil(test_samples / batch_size)
    return steps / (train_it_per_s * INFERENCE_SPEEDUP) / 60.0 + EVAL_OVERHEAD_MIN


def max_batch_size(gpu_memory_gib: float, memory_per_batch_gib: float,
                   packing_density: float | None = None) -> float:
    """(80 / 2.4) x 0.7 = 23.3; packed with density 2.8: 23.3 / 2.8 x 0.6 = 5.0."""
    unpacked = gpu_memory_gib / memory_per_batch_gib * SAFETY
    if packing_density is None:
        return unpacked
    return unpacked / packing_density * PACKED_SAFETY


def recommended_batch_size(max_size: float) -> int:
    """The largest power of two not above the maximum (23.3 -> 16, 9.3 -> 8, 5.0 -> 4)."""
    if max_size < 1:
        return 1
    return int(2 ** math.floor(math.log2(max_size)))


def packed_memory(unpacked_gib: float, density: float) -> float:
    return unpacked_gib * density * PACKED_EFFICIENCY


def disk_gib(checkpoints: Sequence[tuple[int, int, float]],
             evaluations: int) -> tuple[float, float, float]:
    """(runs, epochs, GiB per checkpoint) rows + eval logs + 15% -> (total, checkpoints, logs).

    The seed's 2x2 example: (2, 2, 2.4) + (2, 2, 6.1) + 20 evals -> 39.3 GiB.
    """
    ckpt = sum(runs * epochs * size for runs, epochs, size in checkpoints)
    logs = evaluations * EVAL_LOG_GIB
    return (ckpt + logs) * (1 + DISK_MARGIN), ckpt, logs


def packing_density(mean_chars: float, system_prompt: str, max_seq_len: int) -> float:
    tokens = (mean_chars + len(system_prompt)) / CHARS_PER_TOKEN + TEMPLATE_TOKENS
    return max(1.0, max_seq_len / tokens)


def _interp(points: Sequence[tuple[float, float]], x: float) -> float:
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if x <= x1:
            t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))
    return points[-1][1] * x / points[-1][0]


def size_ratio(points: Sequence[tuple[float, float]], new: str, prior: str) -> float:
    a, b = models.params_billions(new), models.params_billions(prior)
    if a is None or b is None:
        return 1.0
    return _interp(points, a) / _interp(points, b)


def _table(rows: Sequence[tuple[float, T]], params: float | None) -> T:
    p = params if params is not None else 1.0
    return next(v for limit, v in rows if p <= limit)


# --- choosing priors --------------------------------------------------------------------------

def nearest_priors(run: Run, gpu_type: str, priors: Sequence[PriorRun]) -> list[PriorRun]:
    """Same model and GPU first; then same model; then same GPU; else nothing (scale later)."""
    usable = [p for p in priors if p.it_per_s or p.tokens_per_s]
    tiers = (
        [p for p in usable if p.model == run.model and p.gpu_type == gpu_type],
        [p for p in usable if p.model == run.model],
        [p for p in usable if p.gpu_type == gpu_type],
        usable,
    )
    best = next((t for t in tiers if t), [])
    return sorted(best, key=lambda p: (p.batch_size != run.batch_size, p.packed != run.packed,
                                       p.source))


# --- per run ---------------------------------------------------------------------------------

def estimate_run(run: Run, evals: Sequence[Evaluation], site: Site, priors: Sequence[PriorRun],
                 datasets: dict[str, DatasetInfo]) -> RunEstimate:
    calc: list[str] = []
    info = datasets.get(run.dataset)
    params = models.params_billions(run.model)
    chosen = nearest_priors(run, site.gpu.type, priors)
    train, it_s, steps, source, prelim = _train_time(run, info, chosen, calc)
    if run.is_control:
        train, steps = ZERO, None
    ev_total = ZERO
    for ev in evals:
        ev_total = ev_total + _eval_time(run, ev, datasets, it_s, params)
    ckpt = _checkpoint_gib(run, chosen)
    epochs_saved = 0 if run.is_control else run.epochs
    total_disk, _, _ = disk_gib([(1, epochs_saved, ckpt)], len(evals))
    max_bs = _max_batch(run, site, chosen, info, calc)
    gpu_h = (train.value + ev_total.value) * run.gpus / 60.0
    calc.append(f"GPU hours: ({train.value:.1f} + {ev_total.value:.1f}) min x {run.gpus} GPU / 60 "
                f"= {gpu_h:.2f}")
    return RunEstimate(run.name, run.is_control, train, ev_total, len(evals), gpu_h, total_disk,
                       ckpt, run.batch_size, max_bs, it_s, steps,
                       "base model: evaluation only" if run.is_control else source,
                       prelim and not run.is_control, tuple(calc))


def _train_time(run: Run, info: DatasetInfo | None, chosen: list[PriorRun], calc: list[str],
                ) -> tuple[Span, float | None, int | None, str, bool]:
    samples = info.count("train") if info else None
    params = models.params_billions(run.model)
    if chosen and samples:
        prior = chosen[0]
        return _from_prior(run, prior, chosen, samples, calc)
    low, high = _table(EPOCH_MINUTES, params)
    mid = (low + high) / 2
    calc.append(f"no prior run{' and no dataset size' if not samples else ''} for {run.model}: "
                f"fallback table {low}-{high} min/epoch x {run.epochs} epochs (preliminary)")
    return (Span(mid * run.epochs, low * run.epochs, high * run.epochs), None, None,
            "fallback table (preliminary)", True)


def _from_prior(run: Run, prior: PriorRun, chosen: list[PriorRun], samples: int,
                calc: list[str]) -> tuple[Span, float | None, int | None, str, bool]:
    steps = steps_per_epoch(samples, run.batch_size, run.gradient_accumulation_steps, run.gpus)
    scale = size_ratio(SPEED_POINTS, run.model, prior.model)
    rates = []
    for p in chosen[:3]:
        it = _it_per_s(p, run)
        if it:
            rates.append(it / size_ratio(SPEED_POINTS, run.model, p.model))
    it_s = rates[0] if rates else 1.0
    minutes = training_minutes(samples, run.batch_size, it_s, run.epochs,
                               run.gradient_accumulation_steps, run.gpus)
    spread = [training_minutes(samples, run.batch_size, r, run.epochs,
                               run.gradient_accumulation_steps, run.gpus) for r in rates]
    same_batch = prior.batch_size in (None, run.batch_size)
    low = min(spread) * (0.9 if same_batch else 0.5)
    high = max(spread) * (1.1 if same_batch else 1.5)
    src = f"prior run {prior.source}"
    if len(rates) > 1:
        src = f"{len(rates)} prior runs: " + ", ".join(p.source for p in chosen[: len(rates)])
    if scale != 1.0:
        src += f" (scaled x{scale:.2f} for model size, {prior.model} -> {run.model})"
        low, high = low * 0.75, high * 1.5
    calc.append(f"{run.name}: steps/epoch = {samples} / ({run.batch_size} x "
                f"{run.gradient_accumulation_steps} x {run.gpus}) = {steps}; "
                f"{steps} / {it_s:.2f} it/s x {run.epochs} epochs = {minutes:.1f} min ({src})")
    return Span(minutes, low, high), it_s, steps, src, False


def _it_per_s(prior: PriorRun, run: Run) -> float | None:
    """Prior speed at this run's batch size: sample throughput held constant across batch sizes."""
    if prior.it_per_s is None:
        return None
    if prior.batch_size and prior.batch_size != run.batch_size:
        return prior.it_per_s * prior.batch_size / run.batch_size
    return prior.it_per_s


def _eval_time(run: Run, ev: Evaluation, datasets: dict[str, DatasetInfo], it_s: float | None,
               params: float | None) -> Span:
    info = datasets.get(ev.dataset)
    n = info.count(ev.split) if info else None
    if it_s and n:
        m = eval_minutes(n, run.batch_size, it_s)
        return Span(m, m * 0.8, m * 1.5)
    low, high = _table(EVAL_MINUTES, params)
    return Span((low + high) / 2, low, high)


def _checkpoint_gib(run: Run, chosen: list[PriorRun]) -> float:
    same = [p.checkpoint_gib for p in chosen if p.model == run.model and p.checkpoint_gib]
    if same:
        return float(same[0])
    info = models.lookup(run.model)
    if info:
        return info.checkpoint_gib
    return float(_table(CHECKPOINT_GIB, models.params_billions(run.model)))


def _max_batch(run: Run, site: Site, chosen: list[PriorRun], info: DatasetInfo | None,
               calc: list[str]) -> float | None:
    mem = [p for p in chosen if p.peak_memory_gib and p.batch_size]
    if site.gpu.type == "cpu" or not site.gpu.memory_gib or not mem:
        return None
    prior = mem[0]
    assert prior.peak_memory_gib and prior.batch_size
    per_batch = prior.peak_memory_gib / prior.batch_size * size_ratio(MEMORY_POINTS, run.model,
                                                                        prior.model)
    density = None
    if run.packed and prior.packed is False and info:
        density = packing_density(info.mean_chars, run.system_prompt, run.max_seq_len)
    result = max_batch_size(site.gpu.memory_gib, per_batch, density)
    kind = prior.peak_memory_kind or "unknown kind of"
    note = " (post-init figure: under-reports the training peak)" if kind == "post-init" else ""
    calc.append(f"{run.name}: max batch = {site.gpu.memory_gib} GiB / {per_batch:.2f} GiB per "
                f"sample x {SAFETY}"
                + (f" / density {density:.1f} x {PACKED_SAFETY}" if density else "")
                + f" = {result:.1f} (from {kind} peak of {prior.source}{note})")
    return result


# --- whole plan ------------------------------------------------------------------------------

def estimate_plan(exp: Expansion, site: Site, priors: Sequence[PriorRun],
                  datasets: dict[str, DatasetInfo]) -> PlanEstimate:
    runs = tuple(estimate_run(r, exp.evaluations_of(r.name), site, priors, datasets)
                 for r in exp.runs)
    train = sum((r.train_minutes for r in runs), ZERO)
    evals = sum((r.eval_minutes for r in runs), ZERO)
    ckpt = [(1, 0 if r.is_control else exp.run(r.name).epochs, r.checkpoint_gib) for r in runs]
    total_disk, ckpt_disk, log_disk = disk_gib(ckpt, len(exp.evaluations))
    gpus = {r.name: exp.run(r.name).gpus for r in runs}
    train_gh = sum(r.train_minutes.value * gpus[r.name] for r in runs) / 60
    eval_gh = sum(r.eval_minutes.value * gpus[r.name] for r in runs) / 60
    return PlanEstimate(runs, train, evals, train_gh + eval_gh, train_gh, eval_gh, total_disk,
                        ckpt_disk, log_disk, scenarios(runs, site.gpu.count),
                        any(r.preliminary for r in runs))


def scenarios(runs: Sequence[RunEstimate], site_gpus: int) -> tuple[Scenario, ...]:
    trains = sorted((r.train_minutes.value for r in runs if not r.is_control), reverse=True)
    evals = [r.eval_minutes.value / max(r.evaluations, 1)
             for r in runs for _ in range(r.evaluations)]
    n = max(len(trains), len(evals), 1)
    parallel = Scenario("Fully parallel", n, max(trains, default=0.0), max(evals, default=0.0))
    sequential = Scenario("Sequential", 1, sum(trains), sum(evals))
    m = max(1, min(site_gpus, n))
    mixed = Scenario("Mixed", m, _batched(trains, m), _batched(sorted(evals, reverse=True), m))
    return parallel, sequential, mixed


def _batched(durations: Sequence[float], gpus: int) -> float:
    """Longest-first list scheduling on `gpus` identical GPUs: the makespan."""
    lanes = [0.0] * gpus
    for d in sorted(durations, reverse=True):
        lanes[lanes.index(min(lanes))] += d
    return max(lanes, default=0.0)
