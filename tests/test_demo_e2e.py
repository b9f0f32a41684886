"""The README's first command, for real: the demo experiment end to end on the local executor.

Real torchtune fine-tuning of a tiny Llama made locally, real inspect-ai evaluation. It
asserts the mechanics (exit codes, checkpoints, eval logs with status success and a score,
runs_status.yaml, results) and that the fine-tunes learnt: the tiny base is pretrained only
to copy words, so the control scores about 0 and a fine-tune that learnt to capitalize
beats it by a wide margin on the held-out test words.
"""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path

import pytest
import yaml

from planfixtures import DEMO, LOCAL_FILES, make_repo
from tunegit.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.train,
    pytest.mark.skipif(
        importlib.util.find_spec("torchtune") is None
        or importlib.util.find_spec("inspect_ai") is None,
        reason="needs the train extra (pip install -e '.[train]')",
    ),
]


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "repo", files=LOCAL_FILES, experiments=(DEMO,),
                     gitignore=".tunegit/\n", commit="demo")
    assert main(["-C", str(repo), "check", "--write", "-q"]) == 0
    assert main(["-C", str(repo), "tiny-model"]) == 0
    assert main(["-C", str(repo), "run", "demo_capitalization", "--poll", "1"]) == 0
    printed = capsys.readouterr().out
    assert "done: 5 completed, 1 skipped" in printed

    status = yaml.safe_load((repo / "experiments/demo_capitalization/runs_status.yaml").read_text())
    runs = status["runs"]
    assert set(runs) == {"tiny-llama_rank8", "tiny-llama_rank32", "tiny-llama_base"}
    assert runs["tiny-llama_base"]["finetune"]["status"] == "skipped"
    assert set(runs["tiny-llama_base"]["evaluations"]) == {"capitalization"}
    out_dir = repo / ".tunegit/outputs/demo_capitalization"
    for name in ("tiny-llama_rank8", "tiny-llama_rank32"):
        ft = runs[name]["finetune"]
        assert ft["status"] == "completed"
        assert ft["job_id"].startswith("local-") and ft["exit_code"] == 0
        assert ft["elapsed_s"] >= 0 and ft["started"] and ft["ended"]
        assert ft["metrics"]["it_per_s"] > 0 and ft["metrics"]["checkpoint_gib"] > 0
        assert ft["metrics"]["steps_per_epoch"] == 100  # 800 train rows / batch 8
        last = out_dir / name / "ck-out" / "epoch_2"
        assert (last / "model-00001-of-00001.safetensors").is_file()
        assert (last / "adapter_model.safetensors").is_file()
        evals = runs[name]["evaluations"]
        assert set(evals) == {"capitalization_epoch_2"}
    for name, record in runs.items():
        for key, ev in record["evaluations"].items():
            assert ev["status"] == "completed", (name, key, ev)
            assert ev["metric"] == "accuracy" and 0.0 <= ev["score"] <= 1.0
            assert ev["output"].endswith(".eval") and Path(ev["output"]).is_file()
            assert ev["job_id"].startswith("local-")
    # The demo shows learning: each fine-tune >= 0.6 and at least 0.3 above the control.
    base = runs["tiny-llama_base"]["evaluations"]["capitalization"]["score"]
    for name in ("tiny-llama_rank8", "tiny-llama_rank32"):
        tuned = runs[name]["evaluations"]["capitalization_epoch_2"]["score"]
        assert tuned >= 0.6 and tuned - base >= 0.3, (name, tuned, base)

    assert main(["-C", str(repo), "results", "demo_capitalization", "--format", "csv"]) == 0
    csv_text = (repo / "experiments/demo_capitalization/results.csv").read_text()
    assert csv_text.splitlines()[0] == ("run,task,epoch,scorer,metric,score,n,ci_low,ci_high,"
                                        "ci_method,base,diff,diff_n,diff_low,diff_high,"
                                        "status,note")
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    n = rows[0]["n"]  # the test split's size
    assert int(n) > 0
    assert [(r["run"], r["scorer"], r["n"], r["ci_method"]) for r in rows] == [
        (name, "match", n, "wilson") for name in
        ("tiny-llama_rank8", "tiny-llama_rank32", "tiny-llama_base")]
    # Read from the eval logs: both fine-tunes are paired with the base on every sample.
    assert [(r["base"], r["diff_n"]) for r in rows[:2]] == [("tiny-llama_base", n)] * 2
    for png in ("results.png", "loss.png"):
        path = repo / "experiments/demo_capitalization" / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Re-running skips what completed: nothing is submitted again.
    capsys.readouterr()
    assert main(["-C", str(repo), "run", "demo_capitalization"]) == 0
    again = capsys.readouterr().out
    assert "submitted" not in again.replace("done:", "")
