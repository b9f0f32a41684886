"""Prior runs: measured speed, memory and checkpoint size that estimates are drawn from.

Priors come from files in the repository, so an estimate is the same on a laptop,
in CI and on the cluster: ``sites/<site>.priors.yaml`` (harvested from the
site's prior-run logs by ``tunegit priors harvest``) and the metrics tunegit
itself records in ``experiments/*/runs_status.yaml`` for completed runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from tunegit.states import COMPLETED
from tunegit.workspace import Workspace


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


FIELDS = {f.name for f in dataclasses.fields(PriorRun)}


def from_mapping(data: dict[str, Any], source: str) -> PriorRun:
    clean = {k: v for k, v in data.items() if k in FIELDS and k != "source"}
    return PriorRun(source=str(data.get("source", source)), **clean)


def load_site_priors(ws: Workspace, site: str) -> list[PriorRun]:
    path = ws.root / "sites" / f"{site}.priors.yaml"
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    rows = data.get("runs", []) if isinstance(data, dict) else []
    return [from_mapping(r, f"sites/{site}.priors.yaml") for r in rows if isinstance(r, dict)]


def priors_from_status(experiment: str, status: dict[str, Any], gpu_type: str) -> list[PriorRun]:
    """Completed fine-tuning runs recorded in one runs_status.yaml."""
    out = []
    for run, record in (status.get("runs") or {}).items():
        ft = (record or {}).get("finetune") or {}
        metrics = ft.get("metrics") or {}
        config = ft.get("config") or {}
        if ft.get("status") != COMPLETED or not (metrics or config):
            continue
        merged = {**config, **metrics, "gpu_type": config.get("gpu_type", gpu_type)}
        out.append(from_mapping(merged, f"{experiment}/{run}"))
    return out


def load_repo_priors(ws: Workspace, exclude: str = "") -> list[PriorRun]:
    out: list[PriorRun] = []
    for name in ws.experiments():
        if name == exclude:
            continue
        path = ws.experiment_dir(name) / "runs_status.yaml"
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                continue
            if isinstance(data, dict):
                out += priors_from_status(name, data, "")
    return out
