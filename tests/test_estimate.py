"""The estimation formulas as numbers, and the `estimate --json` machine form."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from planfixtures import EXAMPLE_8L, make_repo, run_cli
from tunegit.core import estimate as est


def test_training_time_worked_example() -> None:
    # 8000 samples, batch 4, 4.34 it/s, 2 epochs: 2000 steps/epoch, ~461 s/epoch, ~16 min.
    assert est.steps_per_epoch(8000, 4) == 2000
    minutes = est.training_minutes(8000, 4, 4.34, 2)
    assert minutes == pytest.approx(15.36, abs=0.01)
    assert 15 <= minutes <= 16.5


def test_training_time_divides_steps_by_grad_accum_and_gpus() -> None:
    assert est.steps_per_epoch(8000, 4, grad_accum=2, gpus=2) == 500
    assert est.steps_per_epoch(10, 4) == 3  # a partial last step still runs


def test_eval_time_worked_example() -> None:
    # 1000 samples in 32 batches of 32 = 1024 x (20 prompt + 32 generated) = 53,248 tokens
    # / (2.5 x 10,000 training tokens/s) = 2.1 s, + 60 s loading.
    assert est.EVAL_BATCH == 32
    assert est.eval_minutes(1000, 20, 32, 10_000.0) == pytest.approx(1 + 53_248 / 25_000 / 60)


def test_disk_worked_example_2x2() -> None:
    total, checkpoints, logs = est.disk_gib([(2, 2, 2.4), (2, 2, 6.1)], 20)
    assert checkpoints == pytest.approx(34.0)
    assert logs == pytest.approx(0.2)
    assert total == pytest.approx(39.33, abs=0.01)  # the seed: 39.3 GiB, ~40 GiB


def test_batch_size_worked_examples() -> None:
    one_b = est.max_batch_size(80, 2.4)
    assert one_b == pytest.approx(23.33, abs=0.01)
    assert est.recommended_batch_size(one_b) == 16
    three_b = est.max_batch_size(80, 2.4 * 2.5)  # 3B ~2.5x the memory of 1B: 6 GiB
    assert pytest.approx(6.0) == 2.4 * 2.5
    assert three_b == pytest.approx(9.33, abs=0.01)
    assert est.recommended_batch_size(three_b) == 8
    packed = est.max_batch_size(80, 2.4, packing_density=2.8)
    assert packed == pytest.approx(5.0, abs=0.01)
    assert est.recommended_batch_size(packed) == 4


@pytest.mark.parametrize(("maximum", "recommended"), [(0.3, 1), (1.0, 1), (2.0, 2), (31.9, 16),
                                                      (32.0, 32)])
def test_recommended_batch_size_is_a_power_of_two(maximum: float, recommended: int) -> None:
    assert est.recommended_batch_size(maximum) == recommended


def test_packing_memory_formula() -> None:
    assert est.packed_memory(2.4, 2.8) == pytest.approx(6.05, abs=0.01)  # the seed's ~6.0 GB


def test_size_ratio_follows_the_seed_scaling() -> None:
    # 3B is ~2x slower than 1B; uses ~2.5x the memory.
    assert est.size_ratio(est.SPEED_POINTS, "Llama-3.2-3B-Instruct",
                          "Llama-3.2-1B-Instruct") == pytest.approx(2.0)
    assert est.size_ratio(est.MEMORY_POINTS, "Llama-3.2-3B-Instruct",
                          "Llama-3.2-1B-Instruct") == pytest.approx(2.5)
    assert est.size_ratio(est.SPEED_POINTS, "Unknown", "Llama-3.2-1B-Instruct") == 1.0


def test_scenarios_longest_first_on_n_gpus() -> None:
    assert est._batched([10, 10, 10, 10], 2) == 20
    assert est._batched([30, 10, 10, 10], 2) == 30
    assert est._batched([], 3) == 0


def _estimate_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    root = make_repo(tmp_path, experiments=(EXAMPLE_8L,))
    code, out, err = run_cli(capsys, root, "estimate", EXAMPLE_8L, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


def test_estimate_json_has_the_stable_keys(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = _estimate_json(tmp_path, capsys)
    runs, totals = data["runs"], data["totals"]
    assert isinstance(runs, list) and isinstance(totals, dict)
    assert [r["name"] for r in runs] == [
        "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64",
        "Llama-3.2-3B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank64",
        "Llama-3.2-1B-Instruct_base", "Llama-3.2-3B-Instruct_base"]
    for r in runs:
        assert {"name", "train_minutes", "eval_minutes", "gpu_hours", "disk_gib", "batch_size",
                "source"} <= set(r)
    assert {"train_minutes", "eval_minutes", "gpu_hours", "disk_gib"} <= set(totals)
    assert [r["batch_size"] for r in runs] == [16, 16, 8, 8, 16, 8]
    assert runs[0]["source"].startswith("prior run ")
    assert runs[4]["source"] == "base model: evaluation only"
    assert runs[4]["train_minutes"] == 0


def test_estimate_json_totals_equal_the_sum_of_runs(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    data = _estimate_json(tmp_path, capsys)
    runs, totals = data["runs"], data["totals"]
    assert isinstance(runs, list) and isinstance(totals, dict)
    for key in ("train_minutes", "eval_minutes", "gpu_hours"):
        assert totals[key] == pytest.approx(sum(r[key] for r in runs), abs=1e-9), key
    # Disk: one 15% margin on the sum, so the per-run figures add up to the total.
    assert totals["disk_gib"] == pytest.approx(sum(r["disk_gib"] for r in runs), abs=1e-9)


def test_full_2x2_plan_disk_total_matches_the_seed(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    totals = _estimate_json(tmp_path, capsys)["totals"]
    assert isinstance(totals, dict)
    assert 39 <= totals["disk_gib"] <= 40


def test_estimate_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path, experiments=(EXAMPLE_8L,))
    code, out, _ = run_cli(capsys, root, "estimate", EXAMPLE_8L)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["run", "train", "eval", "GPU-h", "disk", "GiB", "batch", "source"]
    assert lines[1].startswith("Llama-3.2-1B-Instruct_rank4 ")
    assert any(line.startswith("total ") for line in lines)


def test_estimate_unknown_experiment_is_a_clear_error(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path, experiments=(EXAMPLE_8L,))
    code, out, err = run_cli(capsys, root, "estimate", "nope", "--json")
    assert code == 1
    assert out == ""
    assert err == (
        "error: no experiment 'nope' (looked for experiments/nope/experiment.yaml)\n"
        f"hint: known experiments: {EXAMPLE_8L}; `tunegit new NAME` starts one\n")


def test_the_tiny_demo_on_cpu_is_minutes_of_cpu_time_not_the_1b_tables_hours(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The old fallback gave the 148k-parameter model 15 h per run: the 1B table, unscaled.
    root = make_repo(tmp_path, experiments=("demo_capitalization",))
    code, out, err = run_cli(capsys, root, "estimate", "demo_capitalization", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["device"] == "cpu" and data["hours_unit"] == "CPU-hours"
    run = data["runs"][0]
    assert run["source"] == "fallback table (preliminary)" and run["preliminary"]
    assert 1 < run["train_minutes"] < 15  # 20 epochs x 40 steps of a tiny model on CPU
    assert "gpu_hours" in run and run["device"] == "cpu"
    code, out, _ = run_cli(capsys, root, "check", "--write", "demo_capitalization")
    plan_md = (root / "experiments/demo_capitalization/runs_plan.md").read_text()
    assert "the hours below are **CPU hours**" in plan_md
    assert "**Total CPU hours**" in plan_md and "GPU hours" not in plan_md.split("## Compute")[1]


def test_fallback_scales_by_model_size() -> None:
    assert est.size_ratio(est.SPEED_POINTS, "tunegit/tiny-llama",
                          "Llama-3.2-1B-Instruct") == pytest.approx(0.012, abs=0.002)


def test_packed_runs_take_fewer_steps_of_full_sequences() -> None:
    unpacked = est.Shape("m", "gpu", 4, 1, 1, 2, 8000, False, 2048, 16.0, 16.0)
    packed = dataclasses.replace(unpacked, packed=True)
    assert unpacked.steps_per_epoch == 2000 and unpacked.padded_length == 16.0
    assert packed.sequences == math.ceil(8000 * 16 / 2048) == 63
    assert packed.steps_per_epoch == 16 and packed.tokens_per_step == 4 * 2048
    # Unpacked batches pad to the longest example of the batch.
    ragged = dataclasses.replace(unpacked, longest_tokens=40.0)
    assert ragged.padded_length == pytest.approx(16 + 24 * 0.75)
    assert dataclasses.replace(ragged, batch_size=1).padded_length == 16.0
