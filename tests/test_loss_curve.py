"""Loss curves from recorded real torchtune output: a 1B SLURM log (tqdm lines only) and a
tiny CPU run (its job log with validation lines, and its DiskLogger file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunegit.core.logparse import LossCurve, parse_loss_curve
from tunegit.tools import torchtune

LOGS = Path(__file__).parent / "fixtures" / "logs"
REAL_1B = (LOGS / "torchtune-lora-1B-2epochs-slurm.out").read_text()
TINY = (LOGS / "tiny-llama-2epochs-cpu.out").read_text()
TINY_DISK = LOGS / "tiny-llama-2epochs-cpu.disklog.txt"


def test_every_step_of_the_tiny_run_with_its_epoch_and_validation_loss() -> None:
    curve = parse_loss_curve(TINY + TINY_DISK.read_text())
    assert [s for s, _, _ in curve.steps] == list(range(1, 81))  # 2 epochs of 40 steps
    assert curve.steps[0] == (1, 0, 6.27897834777832)
    assert curve.steps[39][:2] == (40, 0) and curve.steps[40][:2] == (41, 1)
    assert curve.steps[-1] == (80, 1, 4.317155838012695)
    assert curve.epoch_ends() == (40,)
    assert [e for e, _ in curve.epoch_means()] == [0, 1]
    assert curve.epoch_means()[1][1] == pytest.approx(4.3645654, abs=1e-6)
    assert curve.validation == ((0, 4.574216), (1, 4.498372))


def test_a_slurm_log_gives_the_steps_its_progress_lines_kept() -> None:
    curve = parse_loss_curve(REAL_1B)
    steps = [s for s, _, _ in curve.steps]
    assert steps[:3] == [40, 41, 42] and steps[-1] == 500
    assert curve.steps[-1] == (500, 1, 0.26427456736564636)
    assert dict((s, e) for s, e, _ in curve.steps)[250] == 0  # the re-print after saving
    assert curve.epoch_ends() == (250,) and curve.validation == ()


def test_disklogger_steps_alone_take_their_epoch_from_the_steps_per_epoch() -> None:
    text = "1|2|Loss: 3.0:  50%|#    | 2/4 [00:01<00:01,  2.00it/s]\n" + "".join(
        f"Step {i} | loss:{10 - i}.5 lr:0.001\n" for i in range(1, 9))
    curve = parse_loss_curve(text)
    assert curve.steps == tuple((i, (i - 1) // 4, 10 - i + 0.5) for i in range(1, 9))
    assert curve.epoch_means() == ((0, 8.0), (1, 4.0))


def test_an_empty_log_has_no_curve() -> None:
    assert parse_loss_curve("") == LossCurve((), ())


def test_torchtune_reads_its_disklogger_and_saved_validation_losses(tmp_path: Path) -> None:
    # The job log (no validation lines here) + <output_dir>/logs: the newest DiskLogger file
    # and validation_loss.json, as a run with `validation: true` leaves them.
    (tmp_path / "logs").mkdir()
    shutil.copy(TINY_DISK, tmp_path / "logs" / "log_1.txt")
    (tmp_path / "logs" / "validation_loss.json").write_text(json.dumps({"0": 4.5, "1": 4.25}))
    job_log = TINY.split("Validation loss")[0]
    curve = torchtune.loss_curve(job_log, str(tmp_path))
    assert len(curve.steps) == 80 and curve.epoch_ends() == (40,)
    assert curve.validation == ((0, 4.5), (1, 4.25))
    assert torchtune.loss_curve("", "").steps == ()
