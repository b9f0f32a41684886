"""Estimates that learn from the repository's own history.

A repository whose git history holds completed runs (real local-executor runs of the tiny
model and a record of the real torchtune SLURM log, tests/fixtures/history/) is asked to
plan new experiments: the estimate names those runs and comes with their spread; held out
one at a time, the completed runs are estimated better from the others than from the
fallback table.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
import yaml

from gitfixtures import commit_all, git
from planfixtures import MINIMAL, REPO, make_repo, run_cli, tiny_plan, write_plan
from tunegit.core.logparse import parse_training_log
from tunegit.edges.calibration import held_out
from tunegit.edges.priors import load_repo_priors
from tunegit.edges.workspace import Workspace

HISTORY = Path(__file__).parent / "fixtures" / "history"
REAL_LOG = Path(__file__).parent / "fixtures" / "logs" / "torchtune-lora-1B-2epochs-slurm.out"
TINY = "tunegit/tiny-llama"

# Three whole epochs of the tiny model; the site's defaults for everything else.
NEW_TINY_PLAN = {
    "question": "Will a new tiny-model plan be estimated from the history?", "tools": None,
    "factors": {"lora_rank": [16]}, "controls": None, "run_name": "tiny_rank{lora_rank}",
    "training": {"epochs": 3, "validation": None, "gpus": None, "system_prompt": None,
                 "seed": None, "max_steps_per_epoch": None},
    "evaluation": MINIMAL["evaluation"],
}
NEW_TINY = tiny_plan("new_tiny", **NEW_TINY_PLAN)

# The 1B model on della, as the real torchtune log in the history ran it.
NEW_1B = tiny_plan("new_1b", **{
    **MINIMAL,
    "question": "Will a new 1B plan on della be estimated from the real log?",
    "dataset": {"path": "tasks/capitalization/input/words_8L_80P_10000.json"},
    "factors": {"lora_rank": [8]}, "controls": None, "run_name": "one_b_rank{lora_rank}",
    "training": {**MINIMAL["training"], "epochs": 3, "batch_size": 32, "max_seq_len": 2048},
    "evaluation": {"tasks": [{"name": "capitalization_8L",
                              "script": "tasks/capitalization/eval.py", "dataset": "training"}]},
})


@pytest.fixture
def history_repo(tmp_path: Path, git_env: Path) -> Path:
    """A git repository whose history holds the completed runs of tests/fixtures/history."""
    root = make_repo(tmp_path / "repo")
    shutil.copy2(REPO / "tasks/capitalization/input/words_4L_80P_1000.json",
                 root / "tasks/capitalization/input/words_4L_80P_1000.json")
    (root / "sites" / "della.priors.yaml").unlink()  # the history alone, not the site's table
    git(root, "init", "-q")
    commit_all(root, "plans")
    for exp in sorted(p for p in HISTORY.iterdir() if p.is_dir()):
        shutil.copytree(exp, root / "experiments" / exp.name)
        commit_all(root, f"{exp.name}: runs completed")
    return root


def _estimate(capsys: pytest.CaptureFixture[str], root: Path, name: str) -> dict[str, object]:
    code, out, err = run_cli(capsys, root, "estimate", name, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_the_fixture_history_holds_real_tiny_runs_and_the_real_log(history_repo: Path) -> None:
    priors = load_repo_priors(Workspace(history_repo))
    tiny = [p for p in priors if p.model == "tiny-llama"]
    assert len(tiny) >= 3 and all(p.gpu_type == "cpu" and p.train_minutes for p in tiny)
    assert len({p.batch_size for p in tiny}) >= 2  # the time model needs two tokens/step
    one_b = next(p for p in priors if p.model == "Llama-3.2-1B-Instruct")
    # The record agrees with the real log it was made from.
    stats = parse_training_log(REAL_LOG.read_text())
    assert one_b.it_per_s == pytest.approx(stats.iterations_per_second, abs=0.01)
    assert one_b.peak_memory_gib == pytest.approx(stats.training_peak_memory_active_gib, abs=1e-3)
    assert one_b.peak_memory_kind == "training"
    assert one_b.checkpoint_save_s == pytest.approx((33.06 + 32.51) / 2)


def test_a_new_tiny_plan_is_estimated_from_the_history_with_sources(
        history_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_plan(history_repo, "new_tiny", NEW_TINY)
    data = _estimate(capsys, history_repo, "new_tiny")
    assert data["device"] == "cpu" and data["hours_unit"] == "CPU-hours"
    runs = data["runs"]
    assert isinstance(runs, list)
    run = runs[0]
    assert run["source"].startswith(tuple(f"{n} prior runs: " for n in range(3, 99)))
    assert "bench_" in run["source"] and not run["preliminary"]
    low, high = run["train_minutes_range"]["low"], run["train_minutes_range"]["high"]
    assert low < run["train_minutes"] < high
    # Seconds to a minute or two on CPU, not the 1B table's hours.
    assert 0.1 < run["train_minutes"] < 5
    assert "gpu_hours" in run and run["device"] == "cpu"


def test_the_same_plan_without_history_falls_back_and_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path / "bare")
    write_plan(root, "new_tiny", NEW_TINY)
    data = _estimate(capsys, root, "new_tiny")
    runs = data["runs"]
    assert isinstance(runs, list)
    assert runs[0]["source"] == "fallback table (preliminary)" and runs[0]["preliminary"]
    # The fallback scales by model size and dataset size: minutes, not the 1B table's hours.
    assert runs[0]["train_minutes"] < 15
    code, out, _ = run_cli(capsys, root, "estimate", "new_tiny")
    assert code == 0 and "CPU-h" in out.splitlines()[0]
    assert "CPU-hours, not GPU-hours" in out


def test_a_new_1b_plan_uses_the_real_log_with_its_checkpoint_saves(
        history_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_plan(history_repo, "new_1b", NEW_1B)
    data = _estimate(capsys, history_repo, "new_1b")
    assert data["device"] == "gpu"
    runs = data["runs"]
    assert isinstance(runs, list)
    run = runs[0]
    assert run["source"] == "prior run della_real_1b/Llama-3.2-1B-Instruct_rank16"
    # 250 steps/epoch at 2.19 it/s, 3 epochs, + 33 s per checkpoint save: ~7.4 min.
    assert run["steps_per_epoch"] == 250
    expected = (750 / 2.19 + 3 * 32.785) / 60
    assert run["train_minutes"] == pytest.approx(expected, rel=0.02)
    assert run["max_batch_size"] is not None
    code, _, _ = run_cli(capsys, history_repo, "check", "--write", "new_1b")
    assert code == 0
    log = (history_repo / "experiments/new_1b/design-experiment.log").read_text()
    assert "checkpoint save 33 s/epoch (logged)" in log
    assert "training peak of della_real_1b" in log


def test_a_post_init_memory_figure_is_named_as_such(
        history_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = history_repo / "experiments/della_real_1b/runs_status.yaml"
    data = yaml.safe_load(status.read_text())
    metrics = data["runs"]["Llama-3.2-1B-Instruct_rank16"]["finetune"]["metrics"]
    metrics.update(peak_memory_gib=2.35, peak_memory_kind="post-init")
    status.write_text(yaml.safe_dump(data, sort_keys=False))
    write_plan(history_repo, "new_1b", NEW_1B)
    code, _, err = run_cli(capsys, history_repo, "check", "--write", "new_1b")
    assert code == 0, err
    plan_md = (history_repo / "experiments/new_1b/runs_plan.md").read_text()
    assert "post-init memory figure, which under-reports the training peak" in plan_md
    log = (history_repo / "experiments/new_1b/design-experiment.log").read_text()
    assert "only a post-init figure: it under-reports the training peak" in log


def test_held_out_runs_are_estimated_better_from_history_than_from_the_table(
        history_repo: Path) -> None:
    rows = held_out(Workspace(history_repo))
    tiny = [r for r in rows if r.model == "tiny-llama"]
    assert len(tiny) >= 3
    history = statistics.median(r.history_ape for r in rows)
    fallback = statistics.median(r.fallback_ape for r in rows)
    assert history < fallback / 2, (history, fallback)
    assert history < 1.0  # the measurements are noisy (a shared 2-core machine), yet within 2x
    for r in tiny:  # each estimate names the other runs, never the held-out one itself
        assert r.source not in r.history_source and "prior run" in r.history_source


def test_history_in_git_is_what_the_estimate_reads(history_repo: Path) -> None:
    log = git(history_repo, "log", "--format=%s")
    assert "della_real_1b: runs completed" in log
    assert git(history_repo, "status", "--porcelain") == ""


SWEEP_TINY = tiny_plan("sweep_tiny", **{
    **NEW_TINY_PLAN, "factors": {"lora_rank": [8, 16], "learning_rate": [1.0e-3, 3.0e-3, 1.0e-2]},
    "run_name": "tiny_rank{lora_rank}_lr{learning_rate}"})


def test_a_plan_is_fitted_once_per_run_shape_with_the_same_estimates(
        history_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """estimate_plan shares the choice of priors and the fit across runs of one shape
    (bench/PERFORMANCE.md: O(runs x priors) before); each run's estimate is what a fresh,
    unshared estimate of it gives."""
    from tunegit.core import estimate as est
    from tunegit.edges.analysis import analyse

    write_plan(history_repo, "sweep_tiny", SWEEP_TINY)
    ws = Workspace(history_repo)
    a = analyse(ws, ws.experiment_dir("sweep_tiny") / "experiment.yaml")
    fits: list[int] = []
    real_fit = est.fit_history
    monkeypatch.setattr(est, "fit_history", lambda shape, chosen: (
        fits.append(shape.batch_size) or real_fit(shape, chosen)))
    priors = load_repo_priors(ws)
    shared = est.estimate_plan(a.expansion, a.site, priors, a.verification.datasets)
    assert len(shared.runs) == 6 and len(fits) == 2  # 6 runs, 2 ranks: 2 shapes
    for run, got in zip(a.expansion.runs, shared.runs, strict=True):
        alone = est.estimate_run(run, a.expansion.evaluations_of(run.name), a.site, priors,
                                 a.verification.datasets)
        assert got == alone, run.name
    assert not any(r.preliminary for r in shared.runs)
