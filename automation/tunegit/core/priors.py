"""Prior runs as records: what an estimate is drawn from, and how one is read (pure).

A prior is one measured run: speed, memory, checkpoint size, wall time. They come from a
site's priors file and from the completed runs recorded in runs_status.yaml; reading those
files is ``tunegit.edges.priors``; turning their contents into ``PriorRun``s is here.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tunegit.core.states import COMPLETED


@dataclasses.dataclass(frozen=True)
class PriorRun:
    source: str
    model: str  # short name
    gpu_type: str = ""
    batch_size: int | None = None
    packed: bool | None = None
    max_seq_len: int | None = None
    lora_rank: int | None = None
    train_samples: int | None = None
    epochs: int | None = None
    it_per_s: float | None = None
    tokens_per_s: float | None = None
    peak_memory_gib: float | None = None
    peak_memory_kind: str = ""  # "training" or "post-init"
    checkpoint_gib: float | None = None
    train_minutes: float | None = None  # measured wall time of the whole fine-tuning job
    estimated_train_minutes: float | None = None
    steps_per_epoch: int | None = None  # measured (the progress bar's N)
    mean_tokens: float | None = None  # tokens per example, when recorded
    checkpoint_save_s: float | None = None  # seconds per epoch's checkpoint save, when logged

    @property
    def device(self) -> str:
        """``cpu`` or ``gpu``: speeds are never carried from one kind of device to the other."""
        return device_of(self.gpu_type)


def device_of(gpu_type: str) -> str:
    return "cpu" if gpu_type.lower() == "cpu" else "gpu"


FIELDS = {f.name for f in dataclasses.fields(PriorRun)}
_Pos = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_PosInt = Annotated[int, Field(gt=0)]


class PriorRow(BaseModel):
    """One measured run, as written in sites/<site>.priors.yaml (extra keys are kept out)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    source: str | None = None
    model: str = Field(min_length=1)
    gpu_type: str = ""
    batch_size: _PosInt | None = None
    packed: bool | None = None
    max_seq_len: _PosInt | None = None
    lora_rank: _PosInt | None = None
    train_samples: _PosInt | None = None
    epochs: _PosInt | None = None
    it_per_s: _Pos | None = None
    tokens_per_s: _Pos | None = None
    peak_memory_gib: _Pos | None = None
    peak_memory_kind: str = ""
    checkpoint_gib: _Pos | None = None
    train_minutes: _Pos | None = None
    estimated_train_minutes: _Pos | None = None
    steps_per_epoch: _PosInt | None = None
    mean_tokens: _Pos | None = None
    checkpoint_save_s: _Pos | None = None


class PriorsFile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    runs: list[PriorRow] = Field(default_factory=list)


def prior_from_row(row: PriorRow, source: str) -> PriorRun:
    values = row.model_dump()
    values["source"] = row.source or source
    return PriorRun(**values)


def from_mapping(data: dict[str, Any], source: str) -> PriorRun:
    """A prior from a mapping; raises pydantic's ValidationError for wrong types."""
    return prior_from_row(PriorRow.model_validate(data), source)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def priors_from_status(experiment: str, status: dict[str, Any], gpu_type: str) -> list[PriorRun]:
    """Completed fine-tuning runs recorded in one runs_status.yaml (malformed rows are skipped)."""
    out = []
    runs = status.get("runs")
    for run, record in (runs.items() if isinstance(runs, dict) else ()):
        ft = _mapping(record.get("finetune") if isinstance(record, dict) else None)
        metrics, config = _mapping(ft.get("metrics")), _mapping(ft.get("config"))
        if ft.get("status") != COMPLETED or not (metrics or config):
            continue
        merged = {**config, **metrics, "gpu_type": config.get("gpu_type", gpu_type)}
        merged.setdefault("model", "")
        try:
            out.append(from_mapping(merged, f"{experiment}/{run}"))
        except ValidationError:
            continue
    return out
