"""Training knobs real runs need. Warmup is a share of the run: 5% of its optimizer steps
by default (1..100), the plan's own value when it sets one, and a warning when a run is
shorter than three warmups. The figures come from the real analysis of a plan on the
della site (1,000 words, 80% for training: 800 examples / batch 4 = 200 steps per epoch,
2 epochs = 400 steps). Activation checkpointing reaches torchtune's own key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from planfixtures import make_repo, minimal_plan, run_cli
from tunegit.core import warmup
from tunegit.edges.analysis import analyse
from tunegit.edges.scaffold import render_context
from tunegit.edges.workspace import Workspace
from tunegit.tools import torchtune


@pytest.mark.parametrize(("explicit", "total", "test_model", "expected"), [
    (None, 400, False, 20), (None, 10, False, 1), (None, 100_000, False, 100),
    (None, None, False, 100), (None, 400, True, 5), (7, 400, False, 7), (0, 400, False, 0),
])
def test_the_warmup_rule(explicit: int | None, total: int | None, test_model: bool,
                         expected: int) -> None:
    assert warmup.warmup_steps(explicit, total, test_model=test_model) == expected


def rendered_warmup(root: Path, name: str) -> dict[str, int]:
    a = analyse(Workspace(root), root / "experiments" / name / "experiment.yaml")
    ctx = render_context(a)
    out = {}
    for run in a.expansion.runs:
        if run.is_control:
            continue
        text = torchtune.render_run(ctx, run)[f"{run.name}/finetune.yaml"]
        out[run.name] = int(re.search(r"num_warmup_steps: (\d+)", text).group(1))
    return out


def test_a_run_warms_up_for_five_percent_of_its_steps(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", plans={"exp": minimal_plan("exp")})
    assert set(rendered_warmup(root, "exp").values()) == {20}  # 5% of 400, not a fixed 100


def test_a_warmup_longer_than_a_third_of_the_run_is_warned_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = minimal_plan("exp", ("training:\n", "training:\n  warmup_steps: 300\n"))
    root = make_repo(tmp_path / "repo", plans={"exp": plan})
    assert set(rendered_warmup(root, "exp").values()) == {300}
    code, _, err = run_cli(capsys, root, "check", "--write", "experiments/exp")
    assert code == 0, err
    assert re.search(r"experiments/exp/experiment\.yaml:\d+:\d+: training\.warmup_steps: "
                     r"\S+_rank4 has 400 optimizer steps and warms up for 300", err), err
    assert "hint: set training.warmup_steps to at most 133" in err


def test_activation_checkpointing_reaches_torchtune_s_key(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", plans={"exp": minimal_plan(
        "exp", ("training:\n", "training:\n  activation_checkpointing: true\n"))})
    a = analyse(Workspace(root), root / "experiments" / "exp" / "experiment.yaml")
    ctx = render_context(a)
    run = next(r for r in a.expansion.runs if not r.is_control)
    text = torchtune.render_run(ctx, run)[f"{run.name}/finetune.yaml"]
    # the key torchtune 0.6.1's lora_finetune_single_device recipe reads
    assert "\nenable_activation_checkpointing: true\n" in text
