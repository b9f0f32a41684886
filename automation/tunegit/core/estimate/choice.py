"""Which prior runs an estimate is drawn from, chosen (and fitted) once per run shape (pure)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tunegit.core.estimate.fit import Fit, Shape, fit_history
from tunegit.core.estimate.formulas import SPEED_POINTS, size_ratio
from tunegit.core.expand import Run
from tunegit.core.priors import PriorRun

# The time model fitted on a shape's chosen priors (``fit.fit_history``).
FitFn = Callable[[Shape, Sequence[PriorRun]], "Fit | None"]


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


def _shape_key(run: Run) -> tuple[object, ...]:
    """What nearest_priors' choice and order depend on (besides the site)."""
    return (run.model, run.batch_size, run.packed, run.max_seq_len, run.lora_rank, run.epochs)


class PriorChooser:
    """nearest_priors, the fitted time model and the memory prior, once per distinct run shape.

    A lab repository holds thousands of priors, and a plan's runs share a few shapes (a
    learning-rate sweep has one): choosing (filter and sort) and fitting (one Point per prior)
    for every run made a plan's estimate O(runs x priors).
    """

    def __init__(self, priors: Sequence[PriorRun], gpu_type: str, device: str,
                 fit: FitFn = fit_history):
        self.priors, self.gpu_type, self.device = priors, gpu_type, device
        self._fit = fit
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
        # fit_history reads the shape's model, batch size and padded length, nothing else.
        key = (*_shape_key(run), shape.padded_length)
        if key not in self._fits:
            self._fits[key] = self._fit(shape, self.nearest(run))
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


def _sources(chosen: Sequence[PriorRun], run: Run) -> str:
    names = [p.source for p in chosen]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    src = (f"prior run {shown}" if len(names) == 1 else f"{len(names)} prior runs: {shown}")
    other = sorted({p.model for p in chosen if p.model != run.model})
    if other:
        ratio = size_ratio(SPEED_POINTS, run.model, other[0])
        src += f" (scaled x{ratio:.2f} for model size, {other[0]} -> {run.model})"
    return src
