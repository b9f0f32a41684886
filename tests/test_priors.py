"""Priors read from the repository: completed runs in runs_status.yaml and the site's table."""

from __future__ import annotations

from pathlib import Path

import pytest

from planfixtures import make_repo
from tunegit.core import estimate as est
from tunegit.core.priors import PriorRun, device_of, priors_from_status
from tunegit.edges.priors import load_repo_priors
from tunegit.edges.workspace import Workspace


def completed(model: str = "tiny-llama", gpu: str = "cpu", **metrics: object) -> dict[str, object]:
    return {"finetune": {"status": "completed",
                         "config": {"model": model, "gpu_type": gpu, "batch_size": 4,
                                    "epochs": 2, "train_samples": 160},
                         "metrics": {"it_per_s": 8.0, "steps_per_epoch": 40,
                                     "train_minutes": 0.5, **metrics}}}


def test_completed_runs_become_priors_with_their_measured_figures() -> None:
    data = {"runs": {"a": completed(checkpoint_save_s=2.5), "b": {"finetune": {"status": "failed"}},
                     "c": completed(it_per_s=-1)}}  # a malformed record is skipped, not fatal
    priors = priors_from_status("exp", data, "")
    assert [p.source for p in priors] == ["exp/a"]
    p = priors[0]
    assert (p.model, p.gpu_type, p.device, p.steps_per_epoch) == ("tiny-llama", "cpu", "cpu", 40)
    assert p.checkpoint_save_s == 2.5 and p.train_minutes == 0.5


@pytest.mark.parametrize(("gpu", "device"), [("cpu", "cpu"), ("CPU", "cpu"), ("A100-80GB", "gpu"),
                                             ("", "gpu")])
def test_device_of_a_gpu_type(gpu: str, device: str) -> None:
    assert device_of(gpu) == device


def test_repo_priors_skip_the_experiment_being_planned(tmp_path: Path) -> None:
    root = make_repo(tmp_path)
    for name in ("one", "two"):
        path = root / "experiments" / name / "runs_status.yaml"
        path.parent.mkdir(parents=True)
        (path.parent / "experiment.yaml").write_text(f"name: {name}\n")
        path.write_text(f"run_group: {name}\nruns:\n  r:\n    finetune:\n      status: completed\n"
                        "      config: {model: tiny-llama, gpu_type: cpu}\n"
                        "      metrics: {it_per_s: 5.0}\n")
    ws = Workspace(root)
    assert [p.source for p in load_repo_priors(ws)] == ["one/r", "two/r"]
    assert [p.source for p in load_repo_priors(ws, exclude="one")] == ["two/r"]


def _point(source: str, step_s: float, tps: float, steps: int, epochs: int,
           overhead: float | None, save: float | None = None) -> est.Point:
    return est.Point(source, step_s, tps, steps, epochs, overhead, save)


def test_step_time_is_fitted_on_tokens_per_step() -> None:
    # 0.1 s + 0.001 s per token: two priors pin both.
    a, b = est.step_model([_point("x", 0.2, 100, 10, 1, 0), _point("y", 0.5, 400, 10, 1, 0)])
    assert a == pytest.approx(0.1) and b == pytest.approx(0.001)
    # One tokens-per-step figure: the same tokens/s (proportional), the seed's conservative rule.
    a, b = est.step_model([_point("x", 0.2, 100, 10, 1, 0)])
    assert a == 0.0 and b == pytest.approx(0.002)
    # Slower with fewer tokens is noise: a flat line, never a negative slope.
    a, b = est.step_model([_point("x", 0.5, 100, 10, 1, 0), _point("y", 0.2, 400, 10, 1, 0)])
    assert b == 0 and a == pytest.approx(0.35)


def test_overhead_splits_startup_and_checkpoint_saves() -> None:
    # 20 s startup + 5 s per epoch, seen over 1, 2 and 4 epochs.
    pts = [_point(f"p{e}", 0.1, 1, 10, e, 20 + 5 * e) for e in (1, 2, 4)]
    startup, per_epoch, how = est.overhead_model(pts)
    assert startup == pytest.approx(20) and per_epoch == pytest.approx(5)
    assert "fitted on wall times" in how
    # A logged save time wins over the fit.
    startup, per_epoch, how = est.overhead_model([_point("l", 0.1, 1, 10, 2, 80, save=33)])
    assert startup == pytest.approx(14) and per_epoch == 33 and "logged" in how
    # No wall time at all: said, not invented.
    assert est.overhead_model([_point("n", 0.1, 1, 10, 2, None)])[:2] == (0.0, 0.0)


def test_priors_never_cross_from_cpu_to_gpu() -> None:
    gpu_prior = PriorRun("della/x", "Llama-3.2-1B-Instruct", "A100-80GB", 16, it_per_s=4.0)
    cpu_prior = PriorRun("local/y", "tiny-llama", "cpu", 4, it_per_s=8.0)

    class _Run:
        model, batch_size, packed, max_seq_len, lora_rank, epochs = (
            "Llama-3.2-1B-Instruct", 16, False, 2048, 8, 2)

    run = _Run()
    assert est.nearest_priors(run, "cpu", [gpu_prior], "cpu") == []  # type: ignore[arg-type]
    assert est.nearest_priors(run, "A100-80GB", [cpu_prior, gpu_prior],  # type: ignore[arg-type]
                              "gpu") == [gpu_prior]
