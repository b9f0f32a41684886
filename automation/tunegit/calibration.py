"""How good were the estimates? Estimate vs actual for every completed run in the repository.

tunegit records, for each completed fine-tuning run, the estimate it was planned
with (``estimate.train_minutes``) and what it measured (``metrics.train_minutes``)
in runs_status.yaml. This module reads them back and summarises the error per
model and GPU type: the median and the worst absolute percentage error.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import yaml

from tunegit.states import COMPLETED
from tunegit.workspace import STATUS_FILE, Workspace


@dataclasses.dataclass(frozen=True)
class Pair:
    source: str  # experiment/run
    model: str
    gpu_type: str
    estimated: float  # minutes
    actual: float  # minutes
    estimate_source: str

    @property
    def ape(self) -> float:
        """Absolute percentage error, |estimated - actual| / actual."""
        return abs(self.estimated - self.actual) / self.actual


@dataclasses.dataclass(frozen=True)
class Group:
    model: str
    gpu_type: str
    runs: int
    median_ape: float
    worst_ape: float
    worst_run: str


def pairs_from_status(experiment: str, data: dict[str, Any]) -> list[Pair]:
    out = []
    for run, record in (data.get("runs") or {}).items():
        ft = (record or {}).get("finetune") or {}
        est = (ft.get("estimate") or {}).get("train_minutes")
        actual = (ft.get("metrics") or {}).get("train_minutes")
        config = ft.get("config") or {}
        if ft.get("status") != COMPLETED or not est or not actual or actual <= 0:
            continue
        out.append(Pair(f"{experiment}/{run}", str(config.get("model", "?")),
                        str(config.get("gpu_type", "?")), float(est), float(actual),
                        str((ft.get("estimate") or {}).get("source", ""))))
    return out


def load_pairs(ws: Workspace) -> list[Pair]:
    out: list[Pair] = []
    for name in ws.experiments():
        path = ws.experiment_dir(name) / STATUS_FILE
        if not path.is_file():
            continue
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            out += pairs_from_status(name, data)
    return out


def summarise(pairs: Iterable[Pair]) -> list[Group]:
    groups: dict[tuple[str, str], list[Pair]] = defaultdict(list)
    for p in pairs:
        groups[(p.model, p.gpu_type)].append(p)
    out = []
    for (model, gpu), members in sorted(groups.items()):
        worst = max(members, key=lambda p: p.ape)
        out.append(Group(model, gpu, len(members), statistics.median(p.ape for p in members),
                         worst.ape, worst.source))
    return out


def accuracy_sentence(groups: Sequence[Group]) -> str:
    """One line for the PR comment: how accurate estimates have been on this repository."""
    if not groups:
        return ("Estimate accuracy: no completed runs recorded yet, so these estimates are "
                "not yet checked against this repository's history.")
    total = sum(g.runs for g in groups)
    median = statistics.median(g.median_ape for g in groups)
    worst = max(groups, key=lambda g: g.worst_ape)
    return (f"Estimate accuracy so far ({total} completed runs): median error {median:.0%} per "
            f"model/GPU, worst {worst.worst_ape:.0%} ({worst.worst_run}).")
