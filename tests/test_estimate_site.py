"""Scenarios and evaluation time from the site and the plan: parallel runs as many jobs at
once as the site does, and an evaluation's time follows its samples and tokens, not the
training batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from planfixtures import EXAMPLE_8L, LOCAL_FILES, make_repo, minimal_plan, tiny_plan
from tunegit.edges.analysis import Analysis, analyse
from tunegit.edges.workspace import Workspace


def analysis_of(root: Path, name: str) -> Analysis:
    ws = Workspace(root)
    return analyse(ws, ws.experiment_dir(name) / "experiment.yaml")


PLANS = {
    "gpu": (EXAMPLE_8L, dict(experiments=(EXAMPLE_8L,))),
    "local-cpu": ("exp", dict(files=LOCAL_FILES, plans={"exp": tiny_plan(
        "exp", factors={"lora_rank": [4, 8, 16, 32, 64]}, controls=True)})),
}


@pytest.mark.parametrize("kind", PLANS)
def test_scenarios_never_use_more_gpus_or_jobs_than_the_site_has(tmp_path: Path,
                                                                 kind: str) -> None:
    name, repo = PLANS[kind]
    a = analysis_of(make_repo(tmp_path, **repo), name)  # type: ignore[arg-type]
    site, scenarios = a.site, a.estimate.scenarios
    at_once = site.max_parallel if site.executor == "local" else site.gpu.count
    assert [s.name for s in scenarios] == ["Parallel", "Sequential"]
    parallel, sequential = scenarios
    assert parallel.jobs == at_once > 1 and sequential.jobs == 1
    for s in scenarios:
        assert s.gpus <= (0 if site.gpu.is_cpu else site.gpu.count), s
    assert len(a.expansion.evaluations) > at_once  # more jobs than the site runs at once


def test_one_job_at_a_time_is_the_only_scenario(tmp_path: Path) -> None:
    root = make_repo(tmp_path, files=LOCAL_FILES, plans={"exp": tiny_plan("exp")})
    scenarios = analysis_of(root, "exp").estimate.scenarios  # one fine-tune, one evaluation
    assert [(s.name, s.jobs) for s in scenarios] == [("Sequential", 1)]


def _eval_minutes(tmp_path: Path, *edits: tuple[str, str]) -> list[float]:
    root = make_repo(tmp_path, plans={"exp": minimal_plan("exp", *edits)})
    return [r.eval_minutes.value for r in analysis_of(root, "exp").estimate.runs]


def test_eval_time_does_not_follow_the_training_batch_size(tmp_path: Path) -> None:
    base = _eval_minutes(tmp_path / "a")
    bigger = _eval_minutes(tmp_path / "b", ("batch_size: 4", "batch_size: 16"))
    assert bigger == pytest.approx(base)


def test_eval_time_follows_the_tokens_a_task_generates(tmp_path: Path) -> None:
    short = _eval_minutes(tmp_path / "a", ("dataset: training", "dataset: training\n"
                                           "      max_tokens: 8"))
    long = _eval_minutes(tmp_path / "b", ("dataset: training", "dataset: training\n"
                                          "      max_tokens: 2048"))
    assert all(b > a for a, b in zip(short, long, strict=True))

