"""The estimate formulas as pure functions, with their constants and the ranged number ``Span``.

Training and evaluation minutes, the batch-size ceiling from memory, disk, packing density,
and the fallback tables and model-size curves used without priors (SPEED_POINTS, MEMORY_POINTS).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from typing import TypeVar

from tunegit.spec import models

T = TypeVar("T")
SAFETY = 0.7
PACKED_SAFETY = 0.6
PACKED_EFFICIENCY = 0.9
INFERENCE_SPEEDUP = 2.5
EVAL_OVERHEAD_MIN = 1.0
# An evaluation generates for this many samples at once: inspect-ai's local (hf) models batch
# up to their max_connections, 32 unless the command line sets it (the eval job does not).
EVAL_BATCH = 32
EVAL_LOG_GIB = 0.01
DISK_MARGIN = 0.15
TEMPLATE_TOKENS = 12
CHARS_PER_TOKEN = 3.5
# The fallback table's reference: a 1B fine-tune on 10,000 words x 0.8 (train split), one GPU.
FALLBACK_EXAMPLES = 8000
CPU_SLOWDOWN = 20.0  # a guess, marked preliminary: training on CPU vs the table's GPU
STARTUP_MIN = 1.0  # loading the model and data before the first step
SAVE_S_PER_GIB = 14.0  # the real 1B log: 33 s per checkpoint of ~2.4 GiB

# Relative to 1B: 3B trains ~2x slower, 7B ~4-5x, 8B ~5-6x; memory: 3B ~2-3x, 7B ~4-5x.
SPEED_POINTS = ((0.0001, 0.01), (1.24, 1.0), (3.21, 2.0), (7.0, 4.5), (8.03, 5.5), (70.6, 50.0))
MEMORY_POINTS = ((0.0001, 0.01), (1.24, 1.0), (3.21, 2.5), (7.0, 4.5), (8.03, 5.0), (70.6, 45.0))
# Fallback tables (no prior data), by billions of parameters: minutes per epoch, minutes per
# evaluation, GiB per checkpoint.
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


def steps_per_epoch(samples: int, batch_size: int, grad_accum: int = 1, gpus: int = 1) -> int:
    return max(1, math.ceil(samples / (batch_size * grad_accum * gpus)))


def training_minutes(samples: int, batch_size: int, it_per_s: float, epochs: int,
                     grad_accum: int = 1, gpus: int = 1) -> float:
    """8000 samples, batch 4, 4.34 it/s, 2 epochs -> 2000 steps/epoch, ~7.7 min/epoch, ~15.4 min."""
    return steps_per_epoch(samples, batch_size, grad_accum, gpus) / it_per_s * epochs / 60.0


def eval_tokens(test_samples: int, prompt_tokens: float, max_tokens: int,
                batch: int = EVAL_BATCH) -> float:
    """Tokens an evaluation processes: its samples in whole batches (the last one padded) x
    (prompt + the max_tokens it may generate)."""
    return math.ceil(test_samples / batch) * batch * (prompt_tokens + max_tokens)


def eval_minutes(test_samples: int, prompt_tokens: float, max_tokens: int,
                 train_tokens_per_s: float, batch: int = EVAL_BATCH) -> float:
    """Evaluation tokens / (2.5 x training tokens/s) + 1 minute loading: 1000 samples at batch
    32, 10,000 training tokens/s -> 1024 x (20 + 32) = 53,248 tokens / 25,000 tokens/s = 2.1 s
    + 60 s ~ 1.04 min."""
    tokens = eval_tokens(test_samples, prompt_tokens, max_tokens, batch)
    return tokens / (train_tokens_per_s * INFERENCE_SPEEDUP) / 60.0 + EVAL_OVERHEAD_MIN


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
    """(runs, epochs, GiB per checkpoint) rows + eval logs + a 15% margin for the files not
    counted -> (total, checkpoints, logs); the margin is total - checkpoints - logs.

    A 2x2 plan of 1B and 3B models, 2 epochs, 20 evaluations: (2, 2, 2.4) + (2, 2, 6.1) +
    20 x 0.01 = 34.2 GiB, + 15% -> 39.3 GiB.
    """
    ckpt = sum(runs * epochs * size for runs, epochs, size in checkpoints)
    logs = evaluations * EVAL_LOG_GIB
    return (ckpt + logs) * (1 + DISK_MARGIN), ckpt, logs


def example_tokens(chars: float, system_prompt: str = "") -> float:
    """Tokens of one example: (characters + system prompt) / 3.5 + 12 chat-template tokens."""
    return (chars + len(system_prompt)) / CHARS_PER_TOKEN + TEMPLATE_TOKENS


def packing_density(mean_chars: float, system_prompt: str, max_seq_len: int) -> float:
    return max(1.0, max_seq_len / example_tokens(mean_chars, system_prompt))


def interp(points: Sequence[tuple[float, float]], x: float) -> float:
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
    return interp(points, a) / interp(points, b)


def table_value(rows: Sequence[tuple[float, T]], params: float | None) -> T:
    p = params if params is not None else 1.0
    return next(v for limit, v in rows if p <= limit)
