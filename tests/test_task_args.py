"""Existing inspect tasks run unchanged: `evaluation.tasks[].args` names their own parameters.

The task below is written the way public inspect tasks are (its own parameter names, a
data path, generation settings as parameters, two scorers), not tunegit's
data_file/split/system_prompt. Its arguments are checked against its signature at `check`
(read from the source: a task that would fail with "missing 1 required positional
argument" is never submitted), and it runs end to end on the local executor.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from planfixtures import LOCAL_FILES, make_repo, run_cli, tiny_plan
from tunegit.cli import main
from tunegit.core.taskargs import (
    TaskNotFound,
    TaskSignature,
    argument_problems,
    fill,
    task_signature,
    unknown_placeholders,
)

OWN_TASK = '''\
"""Echo-the-word, in the style of public inspect tasks: its own parameter names."""

import json

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import includes, match
from inspect_ai.solver import generate


@task
def word_echo(data_path: str, subset: str = "test", *, max_new_tokens: int = 16,
              limit: int | None = None) -> Task:
    rows = json.load(open(data_path))[subset][:limit]
    return Task(
        dataset=MemoryDataset([Sample(input=r["input"], target=r["output"], id=i)
                               for i, r in enumerate(rows)]),
        solver=[generate()],
        scorer=[match(location="exact", ignore_case=False), includes(ignore_case=True)],
        config=GenerateConfig(max_tokens=max_new_tokens),
    )
'''
SCRIPT = "tasks/own/word_echo.py"
ARGS = {"data_path": "{dataset_path}", "subset": "{split}", "max_new_tokens": "{max_tokens}",
        "limit": 6}


def own_plan(name: str, args: dict[str, object] | None = ARGS) -> str:
    task: dict[str, object] = {"name": "echo", "script": SCRIPT, "dataset": "training",
                               "max_tokens": 8}
    if args is not None:
        task["args"] = args
    return tiny_plan(name, evaluation={"epochs": "last", "tasks": [task]})


def repo_with(tmp_path: Path, plan: str) -> Path:
    return make_repo(tmp_path / "repo", files=LOCAL_FILES, plans={"own": plan},
                     texts={SCRIPT: OWN_TASK}, gitignore=".tunegit/\n", commit="own task")


# --- pure -------------------------------------------------------------------------------------

def test_the_signature_is_read_from_the_source() -> None:
    assert task_signature(OWN_TASK, None) == TaskSignature(
        "word_echo", ("data_path", "subset", "max_new_tokens", "limit"), ("data_path",), False)
    source = "@task(name='b2')\ndef b(x, **kw): ...\n@task\ndef c(): ...\ndef plain(): ...\n"
    assert task_signature(source, "b2") == TaskSignature("b2", ("x",), ("x",), True)
    with pytest.raises(TaskNotFound, match=r"defines several tasks \(b2, c\)"):
        task_signature(source, None)
    with pytest.raises(TaskNotFound, match=r"defines no task 'd' \(it has: b2, c\)"):
        task_signature(source, "d")
    assert task_signature("def made_at_run_time(): ...\n", None) is None


def test_arguments_are_checked_against_the_signature() -> None:
    sig = task_signature(OWN_TASK, None)
    assert sig is not None
    assert argument_problems(sig, list(ARGS)) == []
    assert argument_problems(sig, ["data_file", "split", "system_prompt"]) == [
        ("data_file", "task word_echo has no parameter 'data_file' (it takes: data_path, "
                      "subset, max_new_tokens, limit)"),
        ("split", "task word_echo has no parameter 'split' (it takes: data_path, subset, "
                  "max_new_tokens, limit)"),
        ("system_prompt", "task word_echo has no parameter 'system_prompt' (it takes: "
                          "data_path, subset, max_new_tokens, limit)"),
        (None, "task word_echo requires 'data_path' (no default), not given")]
    assert argument_problems(TaskSignature("t", (), (), True), ["anything"]) == []


def test_placeholders_are_filled_and_unknown_ones_named() -> None:
    values = {"dataset_path": "/d.json", "split": "test", "system_prompt": "", "max_tokens": 8}
    assert fill({**ARGS, "note": "{{literal}}"}, values) == {
        "data_path": "/d.json", "subset": "test", "max_new_tokens": "8", "limit": 6,
        "note": "{literal}"}
    assert unknown_placeholders({"a": "{dataset}", "b": 3, "c": "{split}"}) == [("a", "dataset")]


# --- check ------------------------------------------------------------------------------------

def test_a_task_with_its_own_parameters_and_no_args_is_refused_at_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = repo_with(tmp_path, own_plan("own", args=None))
    code, out, err = run_cli(capsys, root, "check", "experiments/own")
    assert code == 1 and out == ""
    assert "experiments/own/experiment.yaml:" in err
    assert ("evaluation.tasks[0].script: task word_echo has no parameter 'data_file'" in err)
    assert "task word_echo requires 'data_path' (no default), not given; without `args:` " \
        "a task gets data_file, split, system_prompt" in err
    assert "hint: pass the task's own parameters under `args:`" in err


def test_a_misnamed_argument_and_an_unknown_placeholder_are_located(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = repo_with(tmp_path, own_plan("own", args={"data_path": "{dataset}", "subst": "x"}))
    code, _, err = run_cli(capsys, root, "check", "experiments/own")
    assert code == 1
    assert "evaluation.tasks[0].args.data_path: unknown placeholder {dataset}" in err
    assert "evaluation.tasks[0].args.subst: task word_echo has no parameter 'subst'" in err
    assert "hint: placeholders: {dataset_path}, {split}, {system_prompt}, {max_tokens}" in err


def test_the_rendered_task_config_holds_the_filled_arguments(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = repo_with(tmp_path, own_plan("own"))
    code, _, err = run_cli(capsys, root, "check", "--write", "experiments/own")
    assert code == 0, err
    assert main(["-C", str(root), "scaffold", "own"]) == 0
    configs = list((root / ".tunegit/outputs/own").glob("*/eval/*.task.json"))
    assert len(configs) == 1
    assert json.loads(configs[0].read_text()) == {
        "data_path": str(root / "tasks/capitalization/input/words_5L_80P_200.json"),
        "subset": "test", "max_new_tokens": "8", "limit": 6}


# --- end to end -------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.train
@pytest.mark.skipif(importlib.util.find_spec("torchtune") is None
                    or importlib.util.find_spec("inspect_ai") is None,
                    reason="needs the train extra (pip install -e '.[train]')")
def test_an_existing_task_runs_unchanged_with_both_scorers_recorded(tmp_path: Path) -> None:
    root = repo_with(tmp_path, own_plan("own"))
    assert main(["-C", str(root), "tiny-model", "--pretrain-steps", "0"]) == 0  # mechanics
    assert main(["-C", str(root), "run", "own", "--poll", "1"]) == 0
    status = yaml.safe_load((root / "experiments/own/runs_status.yaml").read_text())
    ev = status["runs"]["tiny-llama_rank8"]["evaluations"]["echo_epoch_0"]
    assert ev["status"] == "completed", ev
    assert ev["samples"] == 6  # limit=6 reached the task
    assert set(ev["metrics"]) == {"match", "includes"}
    assert all("accuracy" in m for m in ev["metrics"].values())
