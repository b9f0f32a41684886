"""Expansion: the example experiments (a 2x2 model x rank comparison with controls, a rank x
learning-rate sweep) as exact names and counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from planfixtures import EXAMPLE_8L, EXAMPLE_SWEEP, REPO
from tunegit.core.expand import (
    default_run_name,
    eval_epochs,
    expand,
    format_level,
    pattern_fields,
    recipe_for,
)
from tunegit.spec.plan import Plan

TASK = {"name": "capitalization_8L", "script": "tasks/capitalization/eval.py"}


def example(name: str) -> Plan:
    path = REPO / "experiments" / name / "experiment.yaml"
    return Plan.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def plan(**overrides: Any) -> Plan:
    data: dict[str, Any] = {
        "name": "t", "question": "q", "models": ["meta-llama/Llama-3.2-1B-Instruct"],
        "dataset": {"path": "d.json"}, "evaluation": {"tasks": [TASK]},
    }
    data.update(overrides)
    return Plan.model_validate(data)


def test_2x2_factorial_gives_4_finetuned_and_2_controls_with_the_example_names() -> None:
    exp = expand(example(EXAMPLE_8L))
    assert [r.name for r in exp.runs] == [
        "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64",
        "Llama-3.2-3B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank64",
        "Llama-3.2-1B-Instruct_base", "Llama-3.2-3B-Instruct_base",
    ]
    assert len(exp.finetuned) == 4
    assert [r.name for r in exp.controls] == ["Llama-3.2-1B-Instruct_base",
                                              "Llama-3.2-3B-Instruct_base"]
    assert all(r.is_control for r in exp.controls)


def test_2x2_evaluation_keys_and_matrix() -> None:
    exp = expand(example(EXAMPLE_8L))
    keys = {r.name: [e.key for e in exp.evaluations_of(r.name)] for r in exp.runs}
    # epochs: last of 2 -> epoch 1; fine-tuned keys carry the suffix, base keys do not.
    assert keys["Llama-3.2-1B-Instruct_rank4"] == ["capitalization_8L_epoch_1", "reasoning_epoch_1"]
    assert keys["Llama-3.2-3B-Instruct_rank64"] == ["capitalization_8L_epoch_1",
                                                    "reasoning_epoch_1"]
    # The seed's matrix: the 1B base model gets the primary task only.
    assert keys["Llama-3.2-1B-Instruct_base"] == ["capitalization_8L"]
    assert keys["Llama-3.2-3B-Instruct_base"] == ["capitalization_8L", "reasoning"]
    assert len(exp.evaluations) == 4 * 2 + 1 + 2
    base = exp.evaluations_of("Llama-3.2-3B-Instruct_base")
    assert [e.epoch for e in base] == [None, None]
    assert [e.file_stem for e in base] == ["capitalization_8L", "reasoning"]


def test_2x2_batch_sizes_alpha_and_recipe() -> None:
    exp = expand(example(EXAMPLE_8L))
    assert {r.name: r.batch_size for r in exp.finetuned} == {
        "Llama-3.2-1B-Instruct_rank4": 16, "Llama-3.2-1B-Instruct_rank64": 16,
        "Llama-3.2-3B-Instruct_rank4": 8, "Llama-3.2-3B-Instruct_rank64": 8}
    assert [r.lora_alpha for r in exp.finetuned] == [8, 128, 8, 128]
    assert {r.recipe for r in exp.finetuned} == {"lora_finetune_single_device"}
    assert exp.run("Llama-3.2-3B-Instruct_rank4").model_id == "meta-llama/Llama-3.2-3B-Instruct"


@pytest.mark.parametrize(("gpus", "validation", "recipe"), [
    (1, False, "lora_finetune_single_device"),
    (1, True, "lora_finetune_single_device_val"),
    (2, False, "lora_finetune_distributed"),
    (4, True, "lora_finetune_distributed_val"),
])
def test_recipe_follows_gpus_and_validation(gpus: int, validation: bool, recipe: str) -> None:
    assert recipe_for(gpus, validation) == recipe
    p = plan(training={"gpus": gpus, "validation": validation})
    assert expand(p).runs[0].recipe == recipe


@pytest.mark.parametrize("rank", [1, 4, 8, 64, 128])
def test_lora_alpha_is_twice_the_rank(rank: int) -> None:
    assert expand(plan(factors={"lora_rank": [rank]})).runs[0].lora_alpha == 2 * rank


def test_rank_by_learning_rate_sweep_names() -> None:
    exp = expand(example(EXAMPLE_SWEEP))
    assert [r.name for r in exp.runs] == [
        "rank8_lr1e-5", "rank8_lr5e-5", "rank16_lr1e-5", "rank16_lr5e-5",
        "rank32_lr1e-5", "rank32_lr5e-5", "rank64_lr1e-5", "rank64_lr5e-5",
    ]
    assert exp.controls == ()
    assert exp.run("rank16_lr5e-5").learning_rate == pytest.approx(5e-5)
    assert [e.key for e in exp.evaluations_of("rank8_lr1e-5")] == ["capitalization_epoch_0"]


def test_12_runs_x_3_tasks_x_2_epochs_is_72_evaluations() -> None:
    tasks = [{"name": n, "script": "tasks/capitalization/eval.py"} for n in ("a", "b", "c")]
    p = plan(models=["meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"],
             factors={"lora_rank": [4, 8, 16, 32, 64, 128]}, training={"epochs": 2},
             evaluation={"epochs": "all", "tasks": tasks})
    exp = expand(p)
    assert len(exp.finetuned) == 12
    assert len(exp.evaluations) == 72
    assert [e.key for e in exp.evaluations_of(exp.runs[0].name)] == [
        "a_epoch_0", "a_epoch_1", "b_epoch_0", "b_epoch_1", "c_epoch_0", "c_epoch_1"]


def test_controls_add_one_base_run_per_model_evaluated_once_per_task() -> None:
    p = plan(models=["meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"],
             controls=True, training={"epochs": 3}, evaluation={"epochs": "all", "tasks": [TASK]})
    exp = expand(p)
    assert [r.name for r in exp.controls] == ["Llama-3.2-1B-Instruct_base",
                                              "Llama-3.2-3B-Instruct_base"]
    assert [e.key for e in exp.evaluations_of("Llama-3.2-1B-Instruct_base")] == [
        "capitalization_8L"]
    assert len(exp.evaluations) == 2 * 3 + 2


@pytest.mark.parametrize(("choice", "epochs", "expected"), [
    ("last", 3, [2]), ("first", 3, [0]), ("all", 3, [0, 1, 2]), ("best", 3, ["best"]),
    ([0, 2, 0], 3, [0, 2]),
])
def test_eval_epochs(choice: Any, epochs: int, expected: list[Any]) -> None:
    assert eval_epochs(choice, epochs) == expected


def test_eval_epochs_all_of_a_huge_count_is_not_built_for_last() -> None:
    assert eval_epochs("last", 10**9) == [10**9 - 1]  # was an eager list(range(10**9))


@pytest.mark.parametrize(("value", "text"), [
    (1e-5, "1e-5"), (5e-5, "5e-5"), (3.0e-4, "3e-4"), (0.1, "0.1"), (2.5e-3, "2.5e-3"),
    (4, "4"), (True, "true"), ("x", "x"), (0.0, "0"),
])
def test_format_level(value: Any, text: str) -> None:
    assert format_level(value) == text


def test_default_run_name_is_model_then_other_factors() -> None:
    assert default_run_name(["model", "lora_rank", "learning_rate"]) == \
        "{model}_rank{lora_rank}_lr{learning_rate}"
    assert default_run_name(["dataset", "seed"]) == "{dataset}_seed{seed}"
    assert default_run_name([]) == "{model}"


def test_default_names_with_a_dataset_factor() -> None:
    p = plan(factors={"dataset": ["tasks/a/words_5L.json", "tasks/a/words_8L.json"]})
    exp = expand(p)
    assert [r.name for r in exp.runs] == ["Llama-3.2-1B-Instruct_words_5L",
                                          "Llama-3.2-1B-Instruct_words_8L"]
    assert [r.dataset for r in exp.runs] == ["tasks/a/words_5L.json", "tasks/a/words_8L.json"]


def test_string_levels_are_coerced_like_the_training_field() -> None:
    exp = expand(plan(factors={"packed": ["false", "true"]}, run_name="{model}_p{packed}"))
    assert [r.packed for r in exp.runs] == [False, True]  # bool("false") would be True


@pytest.mark.parametrize("pattern", ["{model", "{}", "{model!r}", "{model:>9}", "{model[0]:x}"])
def test_pattern_fields_refuses_anything_but_plain_fields(pattern: str) -> None:
    with pytest.raises(ValueError):
        pattern_fields(pattern)


def test_pattern_fields() -> None:
    assert pattern_fields("{model}_rank{lora_rank}{{x}}") == ["model", "lora_rank"]


def test_expansion_index_matches_a_linear_scan(tmp_path: Path) -> None:
    exp = expand(example(EXAMPLE_8L))
    for r in exp.runs:
        assert exp.run(r.name) is r
        assert exp.evaluations_of(r.name) == tuple(e for e in exp.evaluations if e.run == r.name)
    assert exp.evaluations_of("no such run") == ()
