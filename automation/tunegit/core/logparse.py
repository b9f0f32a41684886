"""Pure parsing of torchtune output (a SLURM log, a DiskLogger file) into measurements.

What the estimator and the status file want from a finished run:

- steady training speed: the median rate of the *in-progress* tqdm updates
  (``1|42|Loss: 9.4: 17%|...| 42/250 [00:20<01:42, 2.04it/s]``; ``s/it`` is
  inverted). Updates at n == N are left out: the one re-printed after the
  checkpoint includes saving time (``250/250 [02:28<00:00, 1.68it/s]``); the
  median shrugs off warm-up;
- ``tokens_per_second_per_gpu`` (median of the DiskLogger/metric lines);
- memory: ``GPU peak memory ...`` lines are printed after model init (post-init,
  not the training peak); ``peak_memory_active/alloc/reserved`` from the
  metric logger or the wandb summary are the training peak (maximum seen);
- checkpoint sizes per epoch (``Model|Adapter checkpoint of size X GiB saved to
  DIR/file``, summed per epoch directory, largest epoch kept);
- steps per epoch, epochs, the last loss, and validation loss per epoch
  (``Validation loss epoch N: x``, written by tunegit's validation pass);
- the loss curve for plotting: every logged step's loss and its epoch (``parse_loss_curve``).
"""

from __future__ import annotations

import dataclasses
import math
import re
import statistics
from collections import defaultdict

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf"
_PROGRESS = re.compile(
    rf"(?P<epoch>\d+)\|(?P<step>\d+)\|Loss: (?P<loss>{_NUM}):\s*\d+%\|[^|\n\r]*\|\s*"
    r"(?P<n>\d+)/(?P<total>\d+) \[[^<\]]*<[^,\]]*,\s*(?P<rate>[\d.]+)\s*(?P<unit>it/s|s/it)\]")
_TOKENS = re.compile(rf"tokens_per_second_per_gpu[:=\s]\s*(?P<value>{_NUM})")
_POST_INIT = re.compile(r"GPU peak memory (?P<kind>active|alloc|reserved): (?P<value>[\d.]+) GiB")
_TRAIN_PEAK = re.compile(rf"peak_memory_(?P<kind>active|alloc|reserved)[:=\s]\s*(?P<value>{_NUM})")
_CHECKPOINT = re.compile(
    r"(?P<kind>Model|Adapter) checkpoint of size (?P<size>[\d.]+) GiB saved to (?P<path>\S+)")
_VALIDATION = re.compile(rf"Validation loss epoch (?P<epoch>\d+): (?P<loss>{_NUM})")


@dataclasses.dataclass(frozen=True)
class Progress:
    epoch: int
    step: int
    loss: float
    n: int
    total: int
    rate: float  # iterations per second


@dataclasses.dataclass(frozen=True)
class TrainingLogStats:
    iterations_per_second: float | None  # steady rate, in-progress updates only
    tokens_per_second_per_gpu: float | None
    post_init_peak_memory_active_gib: float | None  # after model init, NOT the training peak
    post_init_peak_memory_alloc_gib: float | None
    post_init_peak_memory_reserved_gib: float | None
    training_peak_memory_active_gib: float | None  # metric logger / wandb summary maximum
    training_peak_memory_alloc_gib: float | None
    training_peak_memory_reserved_gib: float | None
    model_checkpoint_gib: float | None  # one epoch's merged weights
    adapter_checkpoint_gib: float | None  # one epoch's adapter files
    steps_per_epoch: int | None
    epochs: int | None
    final_loss: float | None
    validation_loss: tuple[tuple[int, float], ...]  # (epoch, loss), epoch 0-based

    @property
    def checkpoint_gib(self) -> float | None:
        """Disk for one saved epoch (model + adapter), when either is known."""
        sizes = (self.model_checkpoint_gib, self.adapter_checkpoint_gib)
        parts = [p for p in sizes if p is not None]
        return sum(parts) if parts else None


def progress_updates(text: str) -> list[Progress]:
    """Every tqdm update in ``text`` (lines may hold several, joined by carriage returns)."""
    updates = []
    for m in _PROGRESS.finditer(text):
        rate = float(m["rate"])
        if m["unit"] == "s/it":
            rate = 1.0 / rate if rate else 0.0
        updates.append(Progress(int(m["epoch"]), int(m["step"]), float(m["loss"]),
                                int(m["n"]), int(m["total"]), rate))
    return updates


def steady_rate(updates: list[Progress]) -> float | None:
    """Median rate of the in-progress updates (n < N); all updates if none is in progress."""
    rates = [u.rate for u in updates if u.n < u.total and u.rate > 0]
    rates = rates or [u.rate for u in updates if u.rate > 0]
    return statistics.median(rates) if rates else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _post_init(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for m in _POST_INIT.finditer(text):
        found.setdefault(m["kind"], float(m["value"]))  # the first block: after model init
    return found


def _training_peak(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for m in _TRAIN_PEAK.finditer(text):
        found[m["kind"]] = max(found.get(m["kind"], 0.0), float(m["value"]))
    return found


def _epoch_dir(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def checkpoint_sizes(text: str) -> dict[str, float]:
    """Kind (``Model``/``Adapter``) -> GiB of the largest epoch directory."""
    per_dir: dict[tuple[str, str], float] = defaultdict(float)
    for m in _CHECKPOINT.finditer(text):
        per_dir[(m["kind"], _epoch_dir(m["path"]))] += float(m["size"])
    sizes: dict[str, float] = {}
    for (kind, _), size in per_dir.items():
        sizes[kind] = max(sizes.get(kind, 0.0), size)
    return sizes


def validation_losses(text: str) -> tuple[tuple[int, float], ...]:
    losses = {int(m["epoch"]): float(m["loss"]) for m in _VALIDATION.finditer(text)}
    return tuple(sorted(losses.items()))


def parse_training_log(text: str) -> TrainingLogStats:
    """Measurements from a torchtune SLURM log and/or DiskLogger text (concatenate both)."""
    updates = progress_updates(text)
    post, peak, sizes = _post_init(text), _training_peak(text), checkpoint_sizes(text)
    tokens = [float(m["value"]) for m in _TOKENS.finditer(text)]
    return TrainingLogStats(
        iterations_per_second=steady_rate(updates),
        tokens_per_second_per_gpu=_median(tokens),
        post_init_peak_memory_active_gib=post.get("active"),
        post_init_peak_memory_alloc_gib=post.get("alloc"),
        post_init_peak_memory_reserved_gib=post.get("reserved"),
        training_peak_memory_active_gib=peak.get("active"),
        training_peak_memory_alloc_gib=peak.get("alloc"),
        training_peak_memory_reserved_gib=peak.get("reserved"),
        model_checkpoint_gib=sizes.get("Model"),
        adapter_checkpoint_gib=sizes.get("Adapter"),
        steps_per_epoch=max((u.total for u in updates), default=None),
        epochs=max((u.epoch for u in updates), default=None),
        final_loss=updates[-1].loss if updates else None,
        validation_loss=validation_losses(text),
    )


# --- the loss curve: every logged step, for plotting -------------------------------------------

_DISK_STEP = re.compile(rf"^Step (?P<step>\d+) \| loss:(?P<loss>{_NUM})", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class LossCurve:
    """Training loss per logged step and validation loss per epoch (epochs 0-based)."""

    steps: tuple[tuple[int, int, float], ...]  # (global step, epoch, loss), by step
    validation: tuple[tuple[int, float], ...] = ()  # (epoch, loss)

    def epoch_means(self) -> tuple[tuple[int, float], ...]:
        """Mean training loss of each epoch's logged steps (finite values only)."""
        per_epoch: dict[int, list[float]] = defaultdict(list)
        for _, epoch, loss in self.steps:
            if math.isfinite(loss):
                per_epoch[epoch].append(loss)
        return tuple((e, statistics.fmean(v)) for e, v in sorted(per_epoch.items()) if v)

    def epoch_ends(self) -> tuple[int, ...]:
        """The last logged step of every epoch but the last: where the plot marks a boundary."""
        last: dict[int, int] = {}
        for step, epoch, _ in self.steps:
            last[epoch] = max(step, last.get(epoch, step))
        return tuple(last[e] for e in sorted(last)[:-1])


def parse_loss_curve(text: str) -> LossCurve:
    """The loss of every step in a torchtune log and/or DiskLogger text (concatenate both).

    DiskLogger's ``Step N | loss:x`` lines give the loss of each logged step; tqdm's
    ``epoch|step|Loss: x`` updates give it too (a SLURM log keeps only some) and say which
    epoch a step is in (1-based there). A step only DiskLogger logged takes its epoch from
    the steps per epoch the progress bars count.
    """
    updates = progress_updates(text)
    from_bar = {u.step: (u.epoch - 1, u.loss) for u in updates}
    from_disk = {int(m["step"]): float(m["loss"]) for m in _DISK_STEP.finditer(text)}
    per_epoch = max((u.total for u in updates), default=0)
    points = []
    for step in sorted(from_bar.keys() | from_disk.keys()):
        if step in from_bar:
            epoch = from_bar[step][0]
        else:
            epoch = (step - 1) // per_epoch if per_epoch else 0
        loss = from_disk[step] if step in from_disk else from_bar[step][1]
        points.append((step, epoch, loss))
    return LossCurve(tuple(points), validation_losses(text))
