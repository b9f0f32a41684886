"""`tunegit logs EXP/RUN[/EVAL]`: the tail of a step's log, and its errors; `tunegit status`
wraps a long reason under its column instead of cutting it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from planfixtures import LOCAL_FILES, make_repo, run_cli, tiny_plan
from tunegit.commands.status import render
from tunegit.core import status as status_mod
from tunegit.core.status import Step
from tunegit.edges.workspace import STATUS_FILE
from tunegit.files import TAIL_BYTES, tail_lines

LOGS = Path(__file__).parent / "fixtures" / "logs"
RUN, BASE, KEY = "tiny-llama_rank8", "tiny-llama_base", "capitalization"
EVAL = "capitalization_epoch_0"


@pytest.fixture
def repo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """An experiment whose rank-8 fine-tune completed with a log, whose evaluation failed
    with the real inspect KeyError log, and whose base evaluation is pending."""
    root = make_repo(tmp_path / "repo", files=LOCAL_FILES,
                     plans={"exp": tiny_plan("exp", controls=True)})
    assert run_cli(capsys, root, "check", "--write", "-q")[0] == 0
    logs = tmp_path / "outputs" / "logs"
    logs.mkdir(parents=True)
    (logs / "finetune.log").write_text("step 1\nstep 2\nsaved\n")
    (logs / "eval.log").write_text((LOGS / "inspect-task-keyerror.log").read_text())
    path = root / "experiments" / "exp" / STATUS_FILE
    status = status_mod.parse(path.read_text())
    status = status.with_step(RUN, None, Step("completed", job_id="local-1",
                                              log=str(logs / "finetune.log")))
    status = status.with_step(RUN, EVAL, Step("failed", job_id="local-2", reason="NonZeroExitCode",
                                              log=str(logs / "eval.log")))
    path.write_text(status_mod.dump(status))
    return root


def test_logs_prints_the_tail_of_a_steps_log_under_a_header_naming_it(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eval_log = repo.parent / "outputs" / "logs" / "eval.log"
    code, out, err = run_cli(capsys, repo, "logs", f"exp/{RUN}/{EVAL}", "-n", "2")
    assert (code, err) == (0, "")
    assert out == (f"==> {eval_log} (exp/{RUN}/{EVAL}: failed, job local-2; last 2 lines) <==\n"
                   "                                            ~^^^^^^^^^^\n"
                   "KeyError: 'answer'\n")
    ft_log = repo.parent / "outputs" / "logs" / "finetune.log"
    for target in (f"exp/{RUN}", f"exp/{RUN}/finetune"):
        code, out, _ = run_cli(capsys, repo, "logs", target)
        assert (code, out) == (0, f"==> {ft_log} ({target}: completed, job local-1; last 3 lines)"
                                  " <==\nstep 1\nstep 2\nsaved\n")
    code, out, _ = run_cli(capsys, repo, "logs", f"exp/{RUN}/{EVAL}")
    assert code == 0 and len(out.splitlines()) == 41 and out.endswith("KeyError: 'answer'\n")


@pytest.mark.parametrize(("target", "error"), [
    ("nope/r", "error: no experiment 'nope' (looked for experiments/nope/experiment.yaml)\n"
               "hint: known experiments: exp; `tunegit new NAME` starts one\n"),
    ("exp/nope", "error: no run 'nope' in exp\n"
                 f"hint: runs: {RUN}, {BASE}\n"),
    (f"exp/{RUN}/nope", f"error: run {RUN} of exp has no evaluation 'nope'\n"
                        f"hint: steps of {RUN}: finetune, {EVAL}\n"),
    ("exp", "error: 'exp': expected EXP/RUN or EXP/RUN/EVAL\n"
            "hint: `tunegit status EXP` lists the runs and their steps\n"),
    (f"exp/{BASE}/{KEY}", f"error: exp/{BASE}/{KEY} has no log: it is pending and never ran "
                          "as a job\nhint: `tunegit status exp` shows every step\n"),
])
def test_logs_errors_name_what_is_valid(repo: Path, capsys: pytest.CaptureFixture[str],
                                        target: str, error: str) -> None:
    assert run_cli(capsys, repo, "logs", target) == (1, "", error)


def test_a_log_that_is_not_on_this_machine_and_a_bad_line_count_are_errors(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = repo.parent / "outputs" / "logs" / "eval.log"
    log.unlink()
    assert run_cli(capsys, repo, "logs", f"exp/{RUN}/{EVAL}") == (
        1, "", f"error: exp/{RUN}/{EVAL}: its log {log} is not on this machine\n"
               "hint: it is where the job ran; run `tunegit logs` on that machine\n")
    assert run_cli(capsys, repo, "logs", f"exp/{RUN}", "-n", "0") == (
        1, "", "error: -n 0: must be at least 1\nhint: omit it for the last 40 lines\n")


def test_tail_lines_reads_back_as_far_as_the_lines_need(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    lines = [f"line {i} " + "x" * 200 for i in range(1000)]  # ~200 KiB: past one TAIL_BYTES read
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 3 * TAIL_BYTES
    assert tail_lines(path, 600) == "\n".join(lines[-600:]) + "\n"
    assert tail_lines(path, 5000) == path.read_text()
    path.write_text("a\nb")  # no newline at the end: kept as it is
    assert (tail_lines(path, 1), tail_lines(path, 2)) == ("b", "a\nb")
    assert tail_lines(tmp_path / "missing.log", 3) == ""


def test_status_wraps_a_long_reason_under_its_column_keeping_a_path_whole() -> None:
    path = "/scratch/lab/outputs/cap_8L_lora_comparison_2025-10-22/tiny-llama_rank8/logs/e.log"
    message = f"job 12 exited with code 1: KeyError: 'answer' (log: {path})"
    status = status_mod.StatusFile("exp", {
        RUN: status_mod.RunStatus(
            Step("completed", job_id="11", elapsed_s=95.0),
            {EVAL: Step("failed", job_id="12", elapsed_s=8.0, reason="NonZeroExitCode",
                        message=message)}),
        BASE: status_mod.RunStatus(Step("skipped", reason="BaseModel"), {KEY: Step()}),
    })
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    under = " " * 74  # the REASON column
    assert render("exp", status, now) == "\n".join([
        "exp: 1 completed, 1 failed, 1 pending, 1 skipped",
        "RUN               STEP                    STATE      JOB  ELAPSED  SCORE  REASON",
        "tiny-llama_rank8  finetune                completed  11   1m 35s",
        "tiny-llama_rank8  capitalization_epoch_0  failed     12   0m 08s          "
        "NonZeroExitCode job 12 exited with code 1: KeyError:",
        f"{under}'answer' (log:",
        f"{under}{path})",
        "tiny-llama_base   finetune                skipped                         BaseModel",
        "tiny-llama_base   capitalization          pending",
    ]) + "\n"
