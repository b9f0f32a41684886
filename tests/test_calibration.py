"""Estimate vs actual, read back from runs_status.yaml records."""

from __future__ import annotations

import pytest

from tunegit.edges.calibration import (
    HeldOut,
    Pair,
    accuracy_sentence,
    held_out_summary,
    pairs_from_status,
    summarise,
)


def record(model: str, est: float, actual: float, status: str = "completed") -> dict[str, object]:
    return {"finetune": {"status": status, "config": {"model": model, "gpu_type": "A100"},
                         "estimate": {"train_minutes": est, "source": "prior run x"},
                         "metrics": {"train_minutes": actual}},
            "evaluations": {}}


def test_pairs_only_from_completed_runs_with_both_figures() -> None:
    data = {"runs": {
        "a": record("Llama-3.2-1B-Instruct", 10, 8),
        "b": record("Llama-3.2-1B-Instruct", 10, 8, status="failed"),
        "c": {"finetune": {"status": "completed", "metrics": {"train_minutes": 3}}},
        "base": {"finetune": {"status": "skipped"}},
    }}
    pairs = pairs_from_status("exp", data)
    assert [p.source for p in pairs] == ["exp/a"]
    assert pairs[0].ape == pytest.approx(0.25)


def test_summary_per_model_and_gpu() -> None:
    pairs = [Pair("e/r1", "1B", "A100", 10, 8, ""), Pair("e/r2", "1B", "A100", 9, 10, ""),
             Pair("e/r3", "1B", "A100", 30, 10, ""), Pair("e/r4", "3B", "A100", 20, 20, "")]
    groups = summarise(pairs)
    assert [(g.model, g.runs) for g in groups] == [("1B", 3), ("3B", 1)]
    one_b = groups[0]
    assert one_b.median_ape == pytest.approx(0.25)
    assert one_b.worst_ape == pytest.approx(2.0) and one_b.worst_run == "e/r3"
    assert groups[1].median_ape == 0
    sentence = accuracy_sentence(groups)
    assert sentence.startswith("Estimate accuracy so far (4 completed runs): median error 12%")
    assert "worst 200% (e/r3)" in sentence


def test_no_history_says_so() -> None:
    assert "no completed runs recorded yet" in accuracy_sentence([])


def test_the_pr_comment_states_the_expected_accuracy() -> None:
    from tunegit.edges.plandiff import ExperimentDiff, PlanDiff, markdown

    groups = summarise([Pair("e/r1", "1B", "A100", 10, 8, "")])
    sentence = accuracy_sentence(groups)
    exp = ExperimentDiff("exp", "added", "experiments/exp/experiment.yaml", runs_added=("r",))
    text = markdown(PlanDiff("a" * 40, "b" * 40, (exp,), accuracy=sentence))
    assert "Estimate accuracy so far (1 completed runs): median error 25%" in text
    assert text.index("Estimate accuracy") < text.index("| experiment |")
    assert markdown(PlanDiff("a" * 40, "b" * 40, (), accuracy=sentence)) == ""


def test_held_out_errors_are_relative_to_the_measurement() -> None:
    row = HeldOut("e/r", "tiny-llama", "cpu", actual=2.0, history=2.5, fallback=6.0,
                  history_source="2 prior runs: e/a, e/b")
    assert row.history_ape == pytest.approx(0.25) and row.fallback_ape == pytest.approx(2.0)
    assert held_out_summary([row]) == (
        "held-out (1 runs, each estimated from the others): median error 25% from history "
        "vs 200% from the fallback table")
