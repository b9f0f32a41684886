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

from tunegit.core.states import COMPLETED
from tunegit.edges.workspace import STATUS_FILE, Workspace


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


# --- leave-one-out: would the history have done better? -----------------------------------------

@dataclasses.dataclass(frozen=True)
class HeldOut:
    """One completed run, estimated from every other prior (history) and from none (fallback)."""

    source: str  # experiment/run
    model: str
    gpu_type: str
    actual: float  # measured minutes
    history: float  # minutes, estimated from the other runs
    fallback: float  # minutes, from the fallback table alone
    history_source: str

    @property
    def history_ape(self) -> float:
        return abs(self.history - self.actual) / self.actual

    @property
    def fallback_ape(self) -> float:
        return abs(self.fallback - self.actual) / self.actual


def held_out(ws: Workspace) -> list[HeldOut]:
    """Leave-one-out over the repository's completed runs with a measured train_minutes.

    Each run is re-estimated with the plan it ran from (its experiment.yaml, its dataset),
    the site's priors and every other completed run, then with no priors at all.
    """
    from tunegit.core.estimate import estimate_run
    from tunegit.edges.analysis import analyse
    from tunegit.edges.priors import load_repo_priors, load_site_priors
    from tunegit.errors import TunegitError

    repo = load_repo_priors(ws)
    out = []
    for name in ws.experiments():
        measured = {p.source: p for p in repo
                    if p.source.startswith(name + "/") and p.train_minutes}
        if not measured:
            continue
        try:
            a = analyse(ws, ws.experiment_dir(name) / "experiment.yaml")
        except (TunegitError, ValueError):
            continue
        site_priors = load_site_priors(ws, a.site.name)
        for source, prior in sorted(measured.items()):
            run_name = source.split("/", 1)[1]
            if run_name not in {r.name for r in a.expansion.runs}:
                continue
            run = a.expansion.run(run_name)
            others = site_priors + [p for p in repo if p.source != source]
            hist = estimate_run(run, [], a.site, others, a.verification.datasets)
            fall = estimate_run(run, [], a.site, [], a.verification.datasets)
            assert prior.train_minutes
            out.append(HeldOut(source, run.model, a.site.gpu.type, prior.train_minutes,
                               hist.train_minutes.value, fall.train_minutes.value, hist.source))
    return out


def held_out_summary(rows: Sequence[HeldOut]) -> str:
    if not rows:
        return "held-out: no completed run with a measured train_minutes"
    hist = statistics.median(r.history_ape for r in rows)
    fall = statistics.median(r.fallback_ape for r in rows)
    return (f"held-out ({len(rows)} runs, each estimated from the others): median error "
            f"{hist:.0%} from history vs {fall:.0%} from the fallback table")
