"""The training-time model fitted on prior runs (pure).

A run's ``Shape`` (padded tokens per step, steps, epochs) from its plan and dataset; each
prior reduced to a ``Point``; seconds per step = a + b x tokens per step fitted on them, plus
startup and per-epoch checkpoint saves fitted on measured wall times; the range is the
model's own error on the priors.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence

from tunegit.core.checks import DatasetInfo
from tunegit.core.estimate.formulas import (
    SPEED_POINTS,
    Span,
    example_tokens,
    size_ratio,
    steps_per_epoch,
)
from tunegit.core.expand import Run
from tunegit.core.priors import PriorRun


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


def shape_of(run: Run, info: DatasetInfo, device: str) -> Shape | None:
    samples = info.count("train")
    if not samples:
        return None
    return Shape(run.model, device, run.batch_size, run.gradient_accumulation_steps, run.gpus,
                 run.epochs, samples, run.packed, run.max_seq_len,
                 example_tokens(info.mean_chars, run.system_prompt),
                 example_tokens(info.longest_chars, run.system_prompt))


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

    With one distinct tokens-per-step figure no line can be fitted: seconds per step are then
    proportional to tokens per step (tokens per second held constant), the conservative choice.
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
