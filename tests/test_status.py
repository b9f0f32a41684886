"""runs_status.yaml: the initial content (all pending, controls' fine-tuning skipped), one
deterministic serializer."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path

import pytest
import yaml

from planfixtures import EXAMPLE_8L, REPO
from tunegit import files
from tunegit.commands.status import elapsed
from tunegit.core import status
from tunegit.core.expand import expand
from tunegit.spec.plan import Plan


def exp_8l() -> tuple[Plan, status.StatusFile]:
    text = (REPO / "experiments" / EXAMPLE_8L / "experiment.yaml").read_text()
    plan = Plan.model_validate(yaml.safe_load(text))
    return plan, status.initial(expand(plan), plan.name)


def test_initial_status_all_pending_base_finetune_skipped_with_the_seed_note() -> None:
    _, st = exp_8l()
    data = yaml.safe_load(status.dump(st))
    assert data["run_group"] == EXAMPLE_8L
    assert list(data["runs"]) == [
        "Llama-3.2-1B-Instruct_rank4", "Llama-3.2-1B-Instruct_rank64",
        "Llama-3.2-3B-Instruct_rank4", "Llama-3.2-3B-Instruct_rank64",
        "Llama-3.2-1B-Instruct_base", "Llama-3.2-3B-Instruct_base"]
    pending = {"status": "pending", "job_id": None, "output": None, "last_updated": None}
    ft = data["runs"]["Llama-3.2-1B-Instruct_rank4"]
    assert ft == {"finetune": pending, "evaluations": {"capitalization_8L_epoch_1": pending,
                                                      "reasoning_epoch_1": pending}}
    base = data["runs"]["Llama-3.2-1B-Instruct_base"]
    assert base["finetune"] == {"status": "skipped", "job_id": None, "output": None,
                                "last_updated": None, "reason": "BaseModel",
                                "note": "Base model - no fine-tuning required"}
    assert base["evaluations"] == {"capitalization_8L": pending}
    assert data["runs"]["Llama-3.2-3B-Instruct_base"]["evaluations"] == {
        "capitalization_8L": pending, "reasoning": pending}


def test_dump_starts_with_the_header_and_keeps_the_seed_key_order() -> None:
    _, st = exp_8l()
    text = status.dump(st)
    assert text.startswith("# Run Status Tracker\n")
    assert ("  Llama-3.2-1B-Instruct_rank4:\n    finetune:\n      status: pending\n"
            "      job_id: null\n      output: null\n      last_updated: null\n") in text


def test_dump_parse_round_trip_is_byte_stable() -> None:
    _, st = exp_8l()
    text = status.dump(st)
    assert status.parse(text) == st
    assert status.dump(status.parse(text)) == text


def test_committed_example_status_is_the_rendered_initial_status() -> None:
    _, st = exp_8l()
    committed = (REPO / "experiments" / EXAMPLE_8L / "runs_status.yaml").read_text()
    assert status.dump(st) == committed


def test_sync_adds_new_runs_and_keeps_existing_records() -> None:
    plan, st = exp_8l()
    done = st.with_step("Llama-3.2-1B-Instruct_rank4", None,
                        status.Step("completed", job_id="42", last_updated="t"))
    bigger = plan.model_copy(update={"factors": {**plan.factors, "lora_rank": [4, 64, 128]}})
    synced = status.sync(done, expand(bigger), plan.name)
    assert synced.step("Llama-3.2-1B-Instruct_rank4", None).job_id == "42"
    assert synced.step("Llama-3.2-1B-Instruct_rank128", None).status == "pending"
    assert status.sync(synced, expand(bigger), plan.name) == synced


def test_sync_drops_what_the_plan_no_longer_has_unless_it_was_submitted() -> None:
    plan, st = exp_8l()
    run, gone = "Llama-3.2-1B-Instruct_rank4", "capitalization_epoch_7"
    (key, pending), = [(k, s) for k, s in st.runs[run].evaluations.items()][:1]
    stale = st.with_step(run, gone, pending)  # an epoch the plan had before
    assert gone not in st.runs[run].evaluations
    assert gone not in status.sync(stale, expand(plan), plan.name).runs[run].evaluations
    ran = stale.with_step(run, gone, status.Step("completed", job_id="7", last_updated="t"))
    kept = status.sync(ran, expand(plan), plan.name)
    assert kept.step(run, gone).job_id == "7" and kept.step(run, key) == pending
    smaller = plan.model_copy(update={"factors": {**plan.factors, "lora_rank": [64]}})
    assert run not in status.sync(st, expand(smaller), plan.name).runs
    assert run in status.sync(ran, expand(smaller), plan.name).runs


def test_damage_tells_a_record_tunegit_wrote_from_one_cut_short_or_edited() -> None:
    text = (REPO / "experiments" / EXAMPLE_8L / "runs_status.yaml").read_text()
    record = status.parse(text)
    run = next(iter(record.runs))
    submitted = record.with_step(run, None, record.step(run, None).moved(
        "submitted", "2025-10-22T10:00:00Z", job_id="123"))
    done = status.dump(submitted)
    assert status.damage(done, text) is None  # a cycle's own, later record
    assert status.damage(text, None) is None
    assert "not valid YAML" in (status.damage(done[:-40] + "{{", done) or "")
    assert "cut short" in (status.damage(done[: len(done) // 2], done) or "")
    without = status.StatusFile(submitted.run_group,
                                {k: v for k, v in submitted.runs.items() if k != run},
                                submitted.plan_commit)  # cut at a run's boundary: still parses
    assert f"{run}/finetune is gone" in (status.damage(status.dump(without), done) or "")


def test_moved_changes_last_updated_only_when_the_state_moves() -> None:
    step = status.Step("running", last_updated="t1")
    assert step.moved("running", "t2").last_updated == "t1"
    assert step.moved("completed", "t2").last_updated == "t2"


@pytest.mark.parametrize(("text", "message"), [
    ("runs: [\n", "not valid YAML at line 2: "),  # then libyaml's or PyYAML's wording
    ("- a\n", "runs_status.yaml: expected `run_group:` and `runs:`"),
    ("runs: {a: [1]}\n", "runs_status.yaml: run 'a' is not a mapping of `finetune:` and "
     "`evaluations:`"),
    ("runs: {a: {evaluations: [1]}}\n", "runs_status.yaml: run 'a' is not a mapping of "
     "`finetune:` and `evaluations:`"),
])
def test_parse_errors_are_status_format_errors(text: str, message: str) -> None:
    with pytest.raises(status.StatusFormatError) as info:
        status.parse(text)
    assert str(info.value) == message or (message.endswith(": ")
                                          and str(info.value).startswith(message))


def test_parse_tolerates_odd_step_values() -> None:
    st = status.parse("runs:\n  a:\n    finetune: {status: bogus, job_id: 7, attempts: 5, "
                      "metrics: [1]}\n    evaluations: {t: null}\n")
    step = st.step("a", None)
    assert (step.status, step.job_id, step.attempts, step.metrics) == ("pending", "7", (), None)
    assert st.step("a", "t") == status.Step()


def test_write_if_changed_is_atomic_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.yaml"
    assert files.write_if_changed(path, "a\n") is True
    mtime = path.stat().st_mtime_ns
    assert files.write_if_changed(path, "a\n") is False
    assert path.stat().st_mtime_ns == mtime
    assert files.write_if_changed(path, "b\n") is True
    assert path.read_text() == "b\n"
    assert [p.name for p in path.parent.iterdir()] == ["f.yaml"]  # no temp files left


def test_a_written_file_gets_the_umask_mode_or_keeps_its_own(tmp_path: Path) -> None:
    # Not mkstemp's 0600: in a lab's shared checkout the group reads status and results.
    old = os.umask(0o022)
    try:
        new = tmp_path / "new.yaml"
        files.write_if_changed(new, "a\n")
        assert stat.S_IMODE(new.stat().st_mode) == 0o644
        new.chmod(0o664)
        files.write_if_changed(new, "b\n")
        assert stat.S_IMODE(new.stat().st_mode) == 0o664
    finally:
        os.umask(old)


@pytest.mark.parametrize(("step", "shown"), [
    (status.Step("running", started="2026-01-01T12:10:00Z"), "0m 00s"),  # a start in the future
    (status.Step("failed", elapsed_s=-600.0), "0m 00s"),
    (status.Step("running", started="2026-01-01T10:10:00Z"), "1h 50m"),
    (status.Step("completed", elapsed_s=75.0), "1m 15s"),
])
def test_elapsed_is_never_shown_negative(step: status.Step, shown: str) -> None:
    """Clocks of two machines can disagree (a start recorded ahead of this clock): the
    status table shows 0, not "-1h 50m"."""
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert elapsed(step, now) == shown
