"""torchtune log parsing on recorded real output: a 1B SLURM run and a tiny CPU run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegit.core.logparse import parse_training_log, progress_updates, steady_rate

LOGS = Path(__file__).parent / "fixtures" / "logs"
REAL_1B = (LOGS / "torchtune-lora-1B-2epochs-slurm.out").read_text()
TINY = (LOGS / "tiny-llama-2epochs-cpu.out").read_text()
TINY_DISK = (LOGS / "tiny-llama-2epochs-cpu.disklog.txt").read_text()


def test_real_1b_log() -> None:
    stats = parse_training_log(REAL_1B)
    assert stats.iterations_per_second == pytest.approx(2.19, abs=0.02)
    assert stats.post_init_peak_memory_active_gib == 2.35
    assert stats.post_init_peak_memory_alloc_gib == 2.35
    assert stats.post_init_peak_memory_reserved_gib == 2.37
    assert stats.training_peak_memory_active_gib == pytest.approx(18.78, abs=0.005)
    assert stats.adapter_checkpoint_gib == 0.02
    assert stats.model_checkpoint_gib is None  # this torchtune printed no model size
    assert (stats.steps_per_epoch, stats.epochs) == (250, 2)
    assert stats.final_loss == pytest.approx(0.26427, abs=1e-5)
    assert stats.tokens_per_second_per_gpu is None and stats.validation_loss == ()


def test_end_of_epoch_reprint_is_not_the_steady_rate() -> None:
    updates = progress_updates(REAL_1B)
    assert {1.68, 1.71} <= {u.rate for u in updates}  # the post-checkpoint re-prints
    assert steady_rate(updates) == pytest.approx(2.185)
    # Two updates on one line (carriage return joined) are both seen.
    assert [u.step for u in updates[:2]] == [40, 41]


def test_seconds_per_iteration_is_inverted() -> None:
    line = "1|3|Loss: 1.5:   1%|          | 3/400 [00:30<1:06:10,  4.00s/it]"
    assert steady_rate(progress_updates(line)) == pytest.approx(0.25)


def test_tiny_cpu_run() -> None:
    stats = parse_training_log(TINY + TINY_DISK)
    assert (stats.steps_per_epoch, stats.epochs) == (40, 2)
    assert stats.iterations_per_second is not None and stats.iterations_per_second > 20
    assert stats.tokens_per_second_per_gpu is not None and stats.tokens_per_second_per_gpu > 100
    assert stats.post_init_peak_memory_active_gib is None  # torchtune logs none on CPU
    assert stats.model_checkpoint_gib == 0.0 and stats.checkpoint_gib == 0.0
    assert [epoch for epoch, _ in stats.validation_loss] == [0, 1]
    assert stats.validation_loss[1][1] == pytest.approx(4.498372)


def test_disk_logger_memory_lines_are_the_training_peak() -> None:
    text = ("Step 1 | loss:2.0 lr:1e-4 tokens_per_second_per_gpu:900.5 peak_memory_active:10.5 "
            "peak_memory_alloc:10.4 peak_memory_reserved:12.0\n"
            "Step 2 | loss:1.9 lr:1e-4 tokens_per_second_per_gpu:1100.5 peak_memory_active:11.25 "
            "peak_memory_alloc:11.0 peak_memory_reserved:12.5\n")
    stats = parse_training_log(text)
    assert stats.training_peak_memory_active_gib == 11.25
    assert stats.training_peak_memory_reserved_gib == 12.5
    assert stats.tokens_per_second_per_gpu == 1000.5


def test_checkpoint_sizes_sum_shards_of_one_epoch() -> None:
    text = "".join(
        f"Model checkpoint of size 2.50 GiB saved to /o/epoch_{e}/model-{i}-of-2.safetensors\n"
        for e in (0, 1) for i in (1, 2))
    stats = parse_training_log(text)
    assert stats.model_checkpoint_gib == 5.0 and stats.adapter_checkpoint_gib is None


def test_empty_log() -> None:
    stats = parse_training_log("")
    assert stats.iterations_per_second is None and stats.epochs is None
