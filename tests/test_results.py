"""Results cells (pure): every scorer, n, the 95% interval, the paired difference from the
base control; the fallback on runs_status.yaml where no eval log was read; the exact
markdown and CSV; the plot's grouping by factors."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import yaml

from planfixtures import tiny_plan
from tunegit.core import results
from tunegit.core.expand import Expansion, expand
from tunegit.core.states import COMPLETED, FAILED
from tunegit.core.stats import wilson
from tunegit.core.status import StatusFile, Step, initial
from tunegit.spec.plan import Plan

RANK8, RANK32, BASE = "tiny-llama_rank8", "tiny-llama_rank32", "tiny-llama_base"
TUNED_KEY, BASE_KEY = "capitalization_epoch_0", "capitalization"


def plan(**overrides: Any) -> Plan:
    text = tiny_plan("exp", **{"factors": {"lora_rank": [8, 32]}, "controls": True,
                               **overrides})
    return Plan.model_validate(yaml.safe_load(text))


def completed(score: float, samples: int | None = 10) -> Step:
    return Step(COMPLETED, job_id="1", output="/nowhere/log.eval", score=score,
                metric="accuracy", samples=samples,
                metrics={"match": {"accuracy": score, "stderr": 0.1},
                         "closeness": {"mean": 0.5}})


def status_of(exp: Expansion, steps: dict[tuple[str, str], Step]) -> StatusFile:
    status = initial(exp, "exp")
    for (run, key), step in steps.items():
        status = status.with_step(run, key, step)
    return status


def correct(ids: range | set[int]) -> dict[str, float]:
    return {str(i): 1.0 if i in ids else 0.0 for i in range(10)}


# rank 8 and the base were read from their eval logs; rank 32's log is not here.
SAMPLES = {
    (RANK8, TUNED_KEY): {"match": correct(range(6)),
                         "closeness": {str(i): 0.5 + i / 20 for i in range(10)}},
    (BASE, BASE_KEY): {"match": correct({0, 1}),
                       "closeness": {str(i): 0.5 for i in range(10)}},
}
STEPS = {(RANK8, TUNED_KEY): completed(0.6), (RANK32, TUNED_KEY): completed(0.4),
         (BASE, BASE_KEY): completed(0.2)}

MARKDOWN = f"""\
# Results: exp

{results.INTRO}

| Run | Task | Epoch | Scorer | Metric | Score | 95% CI | n | Δ base | Δ 95% CI | Status | Note |
|-----|------|-------|--------|--------|-------|--------|---|--------|----------|--------|------|
| tiny-llama_rank8 | capitalization | 0 | match | accuracy | 0.600 | [0.313, 0.832] | 10 | +0.400 | [0.100, 0.700] | completed |  |
| tiny-llama_rank8 | capitalization | 0 | closeness | mean | 0.725 | [0.635, 0.815] | 10 | +0.225 | [0.135, 0.315] | completed |  |
| tiny-llama_rank32 | capitalization | 0 | match | accuracy | 0.400 | [0.168, 0.687] | 10 | - | - | completed | 1, 2 |
| tiny-llama_rank32 | capitalization | 0 | closeness | mean | 0.500 | - | 10 | - | - | completed | 3, 2 |
| tiny-llama_base | capitalization | base | match | accuracy | 0.200 | [0.057, 0.510] | 10 | - | - | completed |  |
| tiny-llama_base | capitalization | base | closeness | mean | 0.500 | [0.500, 0.500] | 10 | - | - | completed |  |

Notes:

1. interval from the score and n recorded in runs_status.yaml (the eval log is not here)
2. no paired difference: it needs the per-sample scores of both runs
3. no interval: it needs the eval log's per-sample scores (not here) or, for an accuracy, the n runs_status.yaml records
"""  # noqa: E501

CSV = """\
run,task,epoch,scorer,metric,score,n,ci_low,ci_high,ci_method,base,diff,diff_n,diff_low,diff_high,status,note
tiny-llama_rank8,capitalization,0,match,accuracy,0.6,10,0.312674,0.83182,wilson,tiny-llama_base,0.4,10,0.1,0.7,completed,
tiny-llama_rank8,capitalization,0,closeness,mean,0.725,10,0.635,0.815,bootstrap,tiny-llama_base,0.225,10,0.135,0.315,completed,
tiny-llama_rank32,capitalization,0,match,accuracy,0.4,10,0.16818,0.687326,wilson,tiny-llama_base,,,,,completed,interval from the score and n recorded in runs_status.yaml (the eval log is not here); no paired difference: it needs the per-sample scores of both runs
"""  # noqa: E501


def test_every_scorer_gets_n_an_interval_and_the_paired_difference_from_base() -> None:
    exp = expand(plan())
    cells = results.collect(exp, status_of(exp, STEPS), SAMPLES)
    assert [(c.run, c.scorer) for c in cells] == [
        (RANK8, "match"), (RANK8, "closeness"), (RANK32, "match"), (RANK32, "closeness"),
        (BASE, "match"), (BASE, "closeness")]
    rank8 = cells[0]
    assert (rank8.score, rank8.n, rank8.interval, rank8.base) == (0.6, 10, wilson(6, 10), BASE)
    assert rank8.diff is not None and rank8.diff.value == 0.4
    # The base control is compared with nothing.
    assert all(c.base == "" and c.diff is None for c in cells if c.run == BASE)
    assert results.markdown(cells, "exp") == MARKDOWN


def test_csv_has_one_row_per_cell_and_the_intervals_as_columns() -> None:
    exp = expand(plan())
    cells = results.collect(exp, status_of(exp, STEPS), SAMPLES)
    lines = results.to_csv(cells).splitlines()
    assert len(lines) == 1 + len(cells)
    assert "\n".join(lines[:4]) + "\n" == CSV


def test_without_an_eval_log_or_a_recorded_n_the_score_stands_alone() -> None:
    exp = expand(plan())
    steps = {**STEPS, (RANK32, TUNED_KEY): completed(0.4, samples=None)}
    cells = results.collect(exp, status_of(exp, steps), SAMPLES)
    rank32 = next(c for c in cells if (c.run, c.scorer) == (RANK32, "match"))
    assert (rank32.score, rank32.n, rank32.interval) == (0.4, None, None)
    assert rank32.note == f"{results.NOTE_NO_INTERVAL}; {results.NOTE_NO_BASE_LOG}"


def test_an_evaluation_not_completed_is_one_cell_with_its_state() -> None:
    exp = expand(plan())
    steps = {**STEPS, (RANK8, TUNED_KEY): Step(FAILED, job_id="3", reason="Failed")}
    cells = results.collect(exp, status_of(exp, steps), SAMPLES)
    rank8 = [c for c in cells if c.run == RANK8]
    assert rank8 == [results.Cell(RANK8, "capitalization", "0", "", "", FAILED, None, None,
                                  None)]
    assert results.rows(rank8)[0] == [RANK8, "capitalization", "0", "-", "-", "-", "-", "-",
                                      "-", "-", FAILED, ""]


def test_a_base_control_evaluated_on_other_data_is_not_paired_by_sample_id() -> None:
    # Sample ids of two datasets name different samples: no paired difference.
    exp = expand(plan(factors={"dataset": ["tasks/capitalization/input/words_5L_80P_200.json",
                                           "tasks/other.json"]}, run_name=None))
    other = next(r.name for r in exp.finetuned if "other" in r.name)
    same = next(r.name for r in exp.finetuned if "other" not in r.name)
    steps = {(other, TUNED_KEY): completed(0.6), (same, TUNED_KEY): completed(0.6),
             (BASE, BASE_KEY): completed(0.2)}
    samples = {(other, TUNED_KEY): SAMPLES[(RANK8, TUNED_KEY)],
               (same, TUNED_KEY): SAMPLES[(RANK8, TUNED_KEY)],
               (BASE, BASE_KEY): SAMPLES[(BASE, BASE_KEY)]}
    cells = {(c.run, c.scorer): c for c in results.collect(exp, status_of(exp, steps), samples)}
    assert cells[(other, "match")].diff is None
    assert cells[(other, "match")].note == results.NOTE_OTHER_DATA
    assert cells[(same, "match")].diff is not None


def test_the_plot_groups_bars_by_the_first_factor_with_controls_first() -> None:
    exp = expand(plan(models=["tunegit/tiny-llama", "tunegit/tiny-llama-b"],
                      factors={"lora_rank": [8, 32]}, run_name=None))
    status = initial(exp, "exp")
    for ev in exp.evaluations:
        status = status.with_step(ev.run, ev.key, completed(0.5))
    panels = results.panels(exp, results.collect(exp, status))
    assert list(panels) == ["capitalization · match", "capitalization · closeness"]
    bars = panels["capitalization · match"]
    assert [(b.label, b.group, b.hue, b.control) for b in bars] == [
        ("tiny-llama base", "base", "", True), ("tiny-llama-b base", "base", "", True),
        ("model=tiny-llama, rank=8", "model=tiny-llama", "rank=8", False),
        ("model=tiny-llama, rank=32", "model=tiny-llama", "rank=32", False),
        ("model=tiny-llama-b, rank=8", "model=tiny-llama-b", "rank=8", False),
        ("model=tiny-llama-b, rank=32", "model=tiny-llama-b", "rank=32", False)]
    assert bars[0].interval == wilson(5, 10)


def test_tunegit_check_does_not_load_scipy() -> None:
    # The intervals need scipy; pre-commit's `tunegit check` must stay quick without it.
    code = ("import sys, tunegit.commands.check, tunegit.edges.harvest, tunegit.tools; "
            "print('scipy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
