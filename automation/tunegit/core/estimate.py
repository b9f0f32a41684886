"""Estimates of time, GPU-hours, batch size and disk, with provenance and ranges.

Seed 001's formulas, as pure functions:
- training, from the repository's history when it has priors on the same kind of device
  (CPU or GPU; same model and GPU first, other models scaled by SPEED_POINTS): training
  tokens (padded: see Shape) / tokens per second, where seconds per step = a + b x tokens
  per step is fitted on the priors' steady speeds, plus startup and per-epoch checkpoint
  saves fitted on their measured wall times; every estimate names its prior runs and its
  range is the model's own error on them. Else the seed's fallback table, scaled by
  model size, dataset size and device (marked preliminary);
- evaluation: test samples / batch / (training it/s x 2.5) + 1 minute overhead;
- batch size: (GPU memory / peak memory per batch) x 0.7, / packing density x 0.6;
- disk: runs x epochs x checkpoint size + 10 MB per evaluation + 15%.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import statistics
from collections.abc import Sequence
from typing import TypeVar

from tunegit.spec import models
from tunegit.core.expand import Evaluation, Expansion, Run
from tunegit.edges.priors import PriorRun
from tunegit.spec.site import Site
from tunegit.edges.verify import DatasetInfo

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
# The fallback table's reference: seed 001's 1B example (10,000 words x 0.8) on one GPU.
FALLBACK_EXAMPLES = 8000
CPU_SLOWDOWN = 20.0  # a guess, marked preliminary: training on CPU vs the table's GPU
STARTUP_MIN = 1.0  # loading the model and data before the first step
SAVE_S_PER_GIB = 14.0  # the real 1B log: 33 s per checkpoint of ~2.4 GiB

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
    device: str = "gpu"  # "cpu": the gpu_hours figures are CPU-hours


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
    device: str = "gpu"  # "cpu": the gpu_hours figures are CPU-hours

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


@functools.cache  # pure in two model names; called once per (run, prior) pair
def size_ratio(points: Sequence[tuple[float, float]], new: str, prior: str) -> float:
    a, b = models.params_billions(new), models.params_billions(prior)
    if a is None or b is None:
        return 1.0
    return _interp(points, a) / _interp(points, b)


def _table(rows: Sequence[tuple[float, T]], params: float | None) -> T:
    p = params if params is not None else 1.0
    return next(v for limit, v in rows if p <= limit)


# --- tokens: what a run trains on ------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Shape:
    """What a run's training time depends on, from its plan and its dataset.

    Approximation (stated in the calculation text): an example is (chars + system prompt) /
    3.5 chars per token + 12 chat-template tokens. Unpacked batches pad to the longest example
    in the batch, taken as mean + (longest - mean) x (1 - 1/batch); packed runs concatenate
    examples into sequences of max_seq_len, each padded to max_seq_len.
    """

    model: str
    device: str  # "cpu" or "gpu"
    batch_size: int
    grad_accum: int
    gpus: int
    epochs: int
    samples: int
    packed: bool
    max_seq_len: int
    mean_tokens: float
    longest_tokens: float

    @property
    def padded_length(self) -> float:
        if self.packed:
            return float(self.max_seq_len)
        grow = (self.longest_tokens - self.mean_tokens) * (1 - 1 / self.batch_size)
        return min(float(self.max_seq_len), self.mean_tokens + max(0.0, grow))

    @property
    def sequences(self) -> int:
        if not self.packed:
            return self.samples
        per = min(self.mean_tokens, float(self.max_seq_len))
        return max(1, math.ceil(self.samples * per / self.max_seq_len))

    @property
    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.sequences, self.batch_size, self.grad_accum, self.gpus)

    @property
    def tokens_per_step(self) -> float:
        """Padded tokens one optimizer step processes on one GPU."""
        return self.batch_size * self.grad_accum * self.padded_length

    @property
    def train_tokens(self) -> float:
        return self.steps_per_epoch * self.epochs * self.tokens_per_step


def example_tokens(chars: float, system_prompt: str = "") -> float:
    return (chars + len(system_prompt)) / CHARS_PER_TOKEN + TEMPLATE_TOKENS


def shape_of(run: Run, info: DatasetInfo, device: str) -> Shape | None:
    samples = info.count("train")
    if not samples:
        return None
    return Shape(run.model, device, run.batch_size, run.gradient_accumulation_steps, run.gpus,
                 run.epochs, samples, run.packed, run.max_seq_len,
                 example_tokens(info.mean_chars, run.system_prompt),
                 example_tokens(info.longest_chars, run.system_prompt))


def device_of(site: Site) -> str:
    return "cpu" if site.gpu.type == "cpu" or site.device == "cpu" else "gpu"


# --- choosing priors --------------------------------------------------------------------------

def nearest_priors(run: Run, gpu_type: str, priors: Sequence[PriorRun],
                   device: str = "gpu") -> list[PriorRun]:
    """Same model and GPU first; then same model on the same kind of device; then other models
    on the same GPU, then on the same kind of device (scaled by model size); else nothing.

    Speeds never cross from CPU to GPU or back. Within a tier, the nearest first: same batch
    size, packing, max_seq_len, LoRA rank, then the closest dataset size.
    """
    usable = [p for p in priors if (p.it_per_s or p.tokens_per_s) and p.device == device]
    tiers = (
        [p for p in usable if p.model == run.model and p.gpu_type == gpu_type],
        [p for p in usable if p.model == run.model],
        [p for p in usable if p.gpu_type == gpu_type],
        usable,
    )
    best = next((t for t in tiers if t), [])
    return sorted(best, key=lambda p: (p.batch_size != run.batch_size, p.packed != run.packed,
                                       p.max_seq_len != run.max_seq_len,
                                       p.lora_rank != run.lora_rank, p.epochs != run.epochs,
                                       p.source))


# --- training time from history ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Point:
    """One prior, reduced to what the time model needs."""

    source: str
    step_s: float  # seconds per optimizer step, steady
    tokens_per_step: float
    steps: int | None  # all epochs; None when not known
    epochs: int | None
    overhead_s: float | None  # measured wall time - steps x step time: startup + saves
    save_s: float | None


def _point(p: PriorRun, shape: Shape, scale: float) -> Point | None:
    length = (float(p.max_seq_len) if p.packed and p.max_seq_len else
              p.mean_tokens or shape.padded_length)
    tps = (p.batch_size or shape.batch_size) * length
    if p.it_per_s:
        step_s = 1.0 / p.it_per_s
    elif p.tokens_per_s:
        step_s = tps / p.tokens_per_s
    else:
        return None
    per_epoch = p.steps_per_epoch or (
        steps_per_epoch(p.train_samples, p.batch_size) if p.train_samples and p.batch_size
        and not p.packed else None)
    steps = per_epoch * p.epochs if per_epoch and p.epochs else None
    overhead = (max(0.0, p.train_minutes * 60 - steps * step_s)
                if steps and p.train_minutes else None)
    return Point(p.source, step_s * scale, tps, steps, p.epochs, overhead, p.checkpoint_save_s)


def _line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares y = a + b x with a, b >= 0 (through the origin, or flat, when one is not)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    a = my - b * mx
    if b < 0:
        return my, 0.0
    if a < 0:
        return 0.0, sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    return a, b


def step_model(points: Sequence[Point]) -> tuple[float, float]:
    """Seconds per step = a + b x tokens per step, fitted on the priors.

    One distinct tokens-per-step figure: proportional (the same tokens/s), the conservative
    reading of seed 001 ("sample throughput held constant").
    """
    if len({round(p.tokens_per_step, 6) for p in points}) < 2:
        return 0.0, statistics.median(p.step_s / p.tokens_per_step for p in points)
    return _line([p.tokens_per_step for p in points], [p.step_s for p in points])


def overhead_model(points: Sequence[Point]) -> tuple[float, float, str]:
    """(startup s, seconds per epoch's checkpoint save, how it was found) from the priors."""
    saves = [p.save_s for p in points if p.save_s]
    measured = [p for p in points if p.overhead_s is not None and p.epochs]
    if saves:
        per_epoch = statistics.median(saves)
        rest = [max(0.0, (p.overhead_s or 0.0) - per_epoch * (p.epochs or 0)) for p in measured]
        return (statistics.median(rest) if rest else 0.0, per_epoch,
                f"checkpoint save {per_epoch:.0f} s/epoch (logged)")
    if not measured:
        return 0.0, 0.0, "no measured wall time: startup and checkpoint saves not included"
    if len({p.epochs for p in measured}) >= 2:
        a, b = _line([float(p.epochs or 0) for p in measured],
                     [p.overhead_s or 0.0 for p in measured])
        return a, b, f"startup {a:.0f} s + {b:.1f} s/epoch for checkpoints (fitted on wall times)"
    startup = statistics.median(p.overhead_s or 0.0 for p in measured)
    return startup, 0.0, f"startup and saves {startup:.0f} s (median of wall time - steps/speed)"


@dataclasses.dataclass(frozen=True)
class Fit:
    """The time model fitted on a run shape's priors: step_s = a + b x tokens per step, plus
    startup and per-epoch saves; lo, hi: its own relative error on the priors."""

    a: float
    b: float
    startup_s: float
    save_s: float
    how: str
    lo: float
    hi: float


def fit_history(shape: Shape, chosen: Sequence[PriorRun]) -> Fit | None:
    points = [pt for p in chosen
              if (pt := _point(p, shape, size_ratio(SPEED_POINTS, shape.model, p.model)))]
    if not points:
        return None
    a, b = step_model(points)
    startup, save_s, how = overhead_model(points)
    # The range: the model's own error on each prior that has a measured wall time.
    errs = [((startup + save_s * (p.epochs or 0) + (p.steps or 0) * (a + b * p.tokens_per_step))
             / ((p.steps or 0) * p.step_s + (p.overhead_s or 0.0)) - 1.0)
            for p in points if p.steps and p.overhead_s is not None]
    return Fit(a, b, startup, save_s, how, min([*errs, -0.1]), max([*errs, 0.1]))


def history_minutes(shape: Shape, fit: Fit, scaled: bool = False) -> tuple[Span, float, str]:
    """(training minutes with a range, it/s, the calculation) from the fitted priors."""
    step_s = fit.a + fit.b * shape.tokens_per_step
    steps = shape.steps_per_epoch * shape.epochs
    fixed = fit.startup_s + fit.save_s * shape.epochs
    minutes = (fixed + steps * step_s) / 60.0
    widen = (0.75, 1.5) if scaled else (1.0, 1.0)
    span = Span(minutes, minutes / (1 + fit.hi) * widen[0],
                minutes / max(0.2, 1 + fit.lo) * widen[1])
    tok_s = shape.tokens_per_step / step_s
    calc = (f"{shape.steps_per_epoch} steps/epoch x {shape.epochs} epochs x "
            f"{shape.tokens_per_step:.0f} padded tokens/step = {shape.train_tokens:,.0f} tokens "
            f"/ {tok_s:,.0f} tokens/s ({1 / step_s:.2f} it/s) + {fixed:.0f} s "
            f"({fit.how}) = {minutes:.2f} min")
    return span, 1 / step_s, calc


# --- choosing and fitting once per run shape --------------------------------------------------

def _shape_key(run: Run) -> tuple[object, ...]:
    """What nearest_priors' choice and order depend on (besides the site)."""
    return (run.model, run.batch_size, run.packed, run.max_seq_len, run.lora_rank, run.epochs)


class PriorChooser:
    """nearest_priors, the fitted time model and the memory prior, once per distinct run shape.

    A lab repository holds thousands of priors, and a plan's runs share a few shapes (a
    learning-rate sweep has one): choosing (filter and sort) and fitting (one Point per prior)
    for every run made a plan's estimate O(runs x priors).
    """

    def __init__(self, priors: Sequence[PriorRun], gpu_type: str, device: str):
        self.priors, self.gpu_type, self.device = priors, gpu_type, device
        self._chosen: dict[tuple[object, ...], list[PriorRun]] = {}
        self._fits: dict[tuple[object, ...], Fit | None] = {}
        self._memory: dict[tuple[object, ...], PriorRun | None] = {}
        self._sources: dict[tuple[object, ...], str] = {}

    def nearest(self, run: Run) -> list[PriorRun]:
        key = _shape_key(run)
        if key not in self._chosen:
            self._chosen[key] = nearest_priors(run, self.gpu_type, self.priors, self.device)
        return self._chosen[key]

    def fit(self, run: Run, shape: Shape) -> Fit | None:
        # _point reads the shape's model, batch size and padded length, nothing else.
        key = (*_shape_key(run), shape.padded_length)
        if key not in self._fits:
            self._fits[key] = fit_history(shape, self.nearest(run))
        return self._fits[key]

    def memory_prior(self, run: Run) -> PriorRun | None:
        """The prior whose peak memory sizes the batch: same model first, training peaks first."""
        key = _shape_key(run)
        if key not in self._memory:
            mem = (p for p in self.nearest(run) if p.peak_memory_gib and p.batch_size)
            self._memory[key] = min(mem, default=None, key=lambda p: (
                p.model != run.model, p.peak_memory_kind != "training"))
        return self._memory[key]

    def sources(self, run: Run) -> str:
        """Which priors an estimate came from, in words."""
        key = _shape_key(run)
        if key not in self._sources:
            self._sources[key] = _sources(self.nearest(run), run)
        return self._sources[key]


# --- per run ---------------------------------------------------------------------------------

def estimate_run(run: Run, evals: Sequence[Evaluation], site: Site, priors: Sequence[PriorRun],
                 datasets: dict[str, DatasetInfo], chooser: PriorChooser | None = None,
                 ) -> RunEstimate:
    """One run's estimate; ``chooser`` (estimate_plan's) shares choices across a plan's runs."""
    calc: list[str] = []
    info = datasets.get(run.dataset)
    params = models.params_billions(run.model)
    device = device_of(site)
    chooser = chooser or PriorChooser(priors, site.gpu.type, device)
    chosen = chooser.nearest(run)
    ckpt = _checkpoint_gib(run, chosen)
    train, it_s, steps, source, prelim = _train_time(run, info, chooser, device, ckpt, calc)
    if run.is_control:
        train, steps = ZERO, None
    ev_total = ZERO
    for ev in evals:
        ev_total = ev_total + _eval_time(run, ev, datasets, it_s, params)
    epochs_saved = 0 if run.is_control else run.epochs
    total_disk, _, _ = disk_gib([(1, epochs_saved, ckpt)], len(evals))
    max_bs, memory_note = _max_batch(run, site, chooser.memory_prior(run), info, calc)
    gpu_h = (train.value + ev_total.value) * run.gpus / 60.0
    unit = "CPU" if device == "cpu" else "GPU"
    calc.append(f"{unit} hours: ({train.value:.1f} + {ev_total.value:.1f}) min x {run.gpus} "
                f"{unit} / 60 = {gpu_h:.2f}")
    source = "base model: evaluation only" if run.is_control else source + memory_note
    return RunEstimate(run.name, run.is_control, train, ev_total, len(evals), gpu_h, total_disk,
                       ckpt, run.batch_size, max_bs, it_s, steps, source,
                       prelim and not run.is_control, tuple(calc), device)


def _train_time(run: Run, info: DatasetInfo | None, chooser: PriorChooser, device: str,
                ckpt_gib: float, calc: list[str],
                ) -> tuple[Span, float | None, int | None, str, bool]:
    shape = shape_of(run, info, device) if info else None
    chosen = chooser.nearest(run)
    if chosen and shape:
        fit = chooser.fit(run, shape)
        if fit:
            # Tiers never mix: chosen is all one model, or all others (scaled).
            scaled = chosen[0].model != run.model
            span, it_s, text = history_minutes(shape, fit, scaled)
            src = chooser.sources(run)
            calc.append(f"{run.name}: {text} (from {src})")
            return span, it_s, shape.steps_per_epoch, src, False
    return _fallback(run, shape, device, ckpt_gib, calc)


def _sources(chosen: Sequence[PriorRun], run: Run) -> str:
    names = [p.source for p in chosen]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    src = (f"prior run {shown}" if len(names) == 1 else f"{len(names)} prior runs: {shown}")
    other = sorted({p.model for p in chosen if p.model != run.model})
    if other:
        ratio = size_ratio(SPEED_POINTS, run.model, other[0])
        src += f" (scaled x{ratio:.2f} for model size, {other[0]} -> {run.model})"
    return src


def _fallback(run: Run, shape: Shape | None, device: str, ckpt_gib: float, calc: list[str],
              ) -> tuple[Span, float | None, int | None, str, bool]:
    """Seed 001's table (1B: 30-60 min per epoch of ~8,000 examples on a GPU), scaled by model
    size (SPEED_POINTS), by the dataset's examples, and x20 on a CPU; plus model loading and
    checkpoint saves (~14 s per GiB, the real 1B log's 33 s)."""
    size = _interp(SPEED_POINTS, models.params_billions(run.model) or 1.24)
    data = shape.samples / FALLBACK_EXAMPLES if shape else 1.0
    k = size * data * (CPU_SLOWDOWN if device == "cpu" else 1.0)
    low, high = EPOCH_MINUTES[0][1]
    fixed = STARTUP_MIN + run.epochs * ckpt_gib * SAVE_S_PER_GIB / 60.0
    span = Span((low + high) / 2 * k * run.epochs + fixed, low * k * run.epochs + fixed,
                high * k * run.epochs + fixed)
    calc.append(f"{run.name}: no prior run of {run.model} on this kind of device: fallback table "
                f"{low}-{high} min/epoch (1B, {FALLBACK_EXAMPLES} examples, GPU) x {size:.3g} "
                f"for model size x {data:.3g} for dataset size"
                + (f" x {CPU_SLOWDOWN} on CPU" if device == "cpu" else "")
                + f" x {run.epochs} epochs + {fixed:.2f} min loading and saves "
                f"= {span.value:.2f} min (preliminary)")
    return (span, None, shape.steps_per_epoch if shape else None,
            "fallback table (preliminary)", True)


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
    same = next((p.checkpoint_gib for p in chosen if p.model == run.model and p.checkpoint_gib),
                None)
    if same:
        return float(same)
    info = models.lookup(run.model)
    if info:
        return info.checkpoint_gib
    return float(_table(CHECKPOINT_GIB, models.params_billions(run.model)))


def _max_batch(run: Run, site: Site, prior: PriorRun | None, info: DatasetInfo | None,
               calc: list[str]) -> tuple[float | None, str]:
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
    calc.append(f"{run.name}: max batch = {site.gpu.memory_gib} GiB / {per_batch:.2f} GiB per "
                f"sample x {SAFETY}"
                + (f" / density {density:.1f} x {PACKED_SAFETY}" if density else "")
                + f" = {result:.1f} (from the {kind} peak of {prior.source}{note})")
    return result, ("; max batch from a post-init memory figure, which under-reports the "
                    "training peak" if post else "")


# --- whole plan ------------------------------------------------------------------------------

def estimate_plan(exp: Expansion, site: Site, priors: Sequence[PriorRun],
                  datasets: dict[str, DatasetInfo]) -> PlanEstimate:
    chooser = PriorChooser(priors, site.gpu.type, device_of(site))
    runs = tuple(estimate_run(r, exp.evaluations_of(r.name), site, priors, datasets, chooser)
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
                        any(r.preliminary for r in runs), device_of(site))


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
