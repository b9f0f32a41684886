"""What `tunegit check --write` says in runs_plan.md and the design log: the words agree
with the arithmetic, and the arithmetic with the plan and the site."""

from __future__ import annotations

from pathlib import Path

import pytest

from planfixtures import EXAMPLE_8L, EXAMPLE_SWEEP, LOCAL_FILES, make_repo, run_cli, tiny_plan
from tunegit.edges.analysis import Analysis, analyse
from tunegit.edges.workspace import Workspace
from tunegit.render.plandoc import minutes, render_design_log

# One task, every epoch of two evaluated, six fine-tunes and their base model.
ONE_TASK_ALL_EPOCHS = tiny_plan("exp", factors={"lora_rank": [4, 8, 16, 32, 64, 128]},
                                controls=True, training={"epochs": 2},
                                evaluation={"epochs": "all"})


def analysis_of(root: Path, name: str) -> Analysis:
    ws = Workspace(root)
    return analyse(ws, ws.experiment_dir(name) / "experiment.yaml")


def local_plan(tmp_path: Path, text: str = ONE_TASK_ALL_EPOCHS) -> Analysis:
    return analysis_of(make_repo(tmp_path, files=LOCAL_FILES, plans={"exp": text}), "exp")


def example(tmp_path: Path, name: str = EXAMPLE_8L) -> Analysis:
    return analysis_of(make_repo(tmp_path, experiments=(name,)), name)


def section(md: str, heading: str) -> str:
    return md.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]


def test_evaluation_count_multiplies_the_plans_tasks_and_evaluated_epochs(tmp_path: Path) -> None:
    # The old text: "6 runs × 2 tasks × 2 epochs = 12" (evaluations per run called tasks).
    md = local_plan(tmp_path).plan_md()
    assert ("- **Total evaluation jobs**:\n"
            "  - Fine-tuned: 6 runs × 1 task × 2 epochs = 12 evaluations\n"
            "  - Base models: 1 run × 1 task = 1 evaluation\n"
            "  - **Total: 13 evaluations**\n") in md


def test_evaluation_count_of_a_matrix_adds_the_runs_that_differ(tmp_path: Path) -> None:
    # The old text: "2 runs × 1.5 tasks (on average) × 1 eval = 3 evaluations".
    md = example(tmp_path).plan_md()
    assert ("  - Fine-tuned: 4 runs × 2 tasks × 1 epoch = 8 evaluations\n"
            "  - Base models: 1 run × 1 task + 1 run × 2 tasks = 3 evaluations\n"
            "  - **Total: 11 evaluations**\n") in md


def test_a_plan_without_controls_says_so(tmp_path: Path) -> None:
    md = example(tmp_path, EXAMPLE_SWEEP).plan_md()
    assert ("  - Fine-tuned: 8 runs × 1 task × 1 epoch = 8 evaluations\n"
            "  - Base models: none (the plan has `controls: false`)\n"
            "  - **Total: 8 evaluations**\n") in md


def test_scenarios_run_as_many_jobs_at_once_as_the_gpu_site_has_gpus(tmp_path: Path) -> None:
    # The old text: "Scenario 1: Fully parallel (11 GPUs)" on della's 4 GPUs (11 evaluations).
    a = example(tmp_path)
    assert a.site.gpu.count == 4
    scenarios = section(a.plan_md(), "### Wall-Clock Time Scenarios")
    assert [line for line in scenarios.splitlines() if line.startswith("**Scenario")] == [
        "**Scenario 1: Parallel (4 GPUs)**", "**Scenario 2: Sequential (1 GPU)**"]
    assert "| **Wall-Clock (Parallel, 4 GPUs)** |" in a.plan_md()


def test_scenarios_on_a_local_cpu_site_run_max_parallel_jobs_at_once(tmp_path: Path) -> None:
    # The old text: "Fully parallel (13 GPUs)" and "Mixed (1 GPU)" on a CPU site running 2 jobs.
    a = local_plan(tmp_path)
    assert a.site.executor == "local" and a.site.max_parallel == 2
    md = a.plan_md()
    scenarios = section(md, "### Wall-Clock Time Scenarios")
    assert [line for line in scenarios.splitlines() if line.startswith("**Scenario")] == [
        "**Scenario 1: Parallel (2 jobs at once)**", "**Scenario 2: Sequential (1 job at a time)**"]
    assert "| **Wall-Clock (Parallel, 2 jobs at once)** |" in md
    assert "GPU" not in scenarios


def test_estimate_prints_the_sites_jobs_at_once(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # The old text: "Fully parallel (13 CPU)" on a site with max_parallel 2.
    root = make_repo(tmp_path, files=LOCAL_FILES, plans={"exp": ONE_TASK_ALL_EPOCHS})
    code, out, err = run_cli(capsys, root, "estimate", "exp")
    assert code == 0, err
    assert [line.split(":")[0] for line in out.splitlines() if "wall-clock" in line] == [
        "  Parallel (2 jobs at once)", "  Sequential (1 job at a time)"]


def test_a_control_runs_design_log_computes_no_training(tmp_path: Path) -> None:
    # The old entry: "... x 2 epochs + 1.00 min loading and saves = 1.44 min (preliminary)",
    # then "Result: 0 s training, 2 min evaluation".
    a = local_plan(tmp_path)
    log = render_design_log(a.loaded.plan, a.expansion, a.verification.checks, a.estimate,
                            "2025-10-22 14:23:15")
    entries = [e for e in log.strip().split("\n\n") if "Estimate for tiny-llama_base\n" in e]
    evaluation = minutes(a.estimate.run("tiny-llama_base").eval_minutes.value)
    assert entries[0] == (
        "[2025-10-22 14:23:15] CALCULATE_TIME: Estimate for tiny-llama_base\n"
        "Calculation: tiny-llama_base: a control: the base model is evaluated as it is, "
        "no training to estimate\n"
        f"Result: no training, {evaluation} evaluation\n"
        "Explanation: Source: base model: evaluation only")
    for entry in entries:
        assert "epoch" not in entry and "s training" not in entry, entry
    assert [e.split("\n")[0].split("] ")[1] for e in entries] == [
        "CALCULATE_TIME: Estimate for tiny-llama_base",
        "CALCULATE_EVAL: Estimate for tiny-llama_base",
        "CALCULATE_TIME: Estimate for tiny-llama_base"]
    hours = entries[-1].split("\n")[1]
    assert hours.startswith("Calculation: CPU hours: ")
    assert " min evaluation x 1 CPU / 60 = " in hours


def test_the_disk_total_shows_its_margin(tmp_path: Path) -> None:
    # The old text: "**Total disk space needed** (with 15% margin): ~39.2 GiB", the margin
    # not shown, and a summary row whose parts (34.0 + 0.1) did not add up to its 39.2.
    a = example(tmp_path)
    md = a.plan_md()
    assert ("**Evaluation logs** (inspect-ai output):\n"
            "- Estimated: ~0.01 GiB per evaluation × 11 evals = 0.110 GiB\n"
            "\n"
            "**Total disk space needed**:\n"
            "- Checkpoints + evaluation logs: 34.0 GiB + 0.110 GiB = 34.1 GiB\n"
            "- Margin of 15% (for files this estimate does not count): 5.1 GiB\n"
            "- **Total**: ~39.2 GiB\n") in md
    assert ("| **Disk Space** | 34.0 GiB | 0.110 GiB | **39.2 GiB** (with the 5.1 GiB margin) |\n"
            in md)
    log = render_design_log(a.loaded.plan, a.expansion, a.verification.checks, a.estimate, "T")
    disk = next(e for e in log.split("\n\n") if "CALCULATE_DISK" in e)
    assert disk == (
        "[T] CALCULATE_DISK: Disk space estimate\n"
        "Calculation: checkpoints 34.0 GiB + eval logs 0.110 GiB = 34.1 GiB, + 15% margin "
        "5.1 GiB = 39.2 GiB\n"
        "Result: 39.2 GiB\n"
        "Explanation: tunegit does not check free space: the site's output_dir needs this much")
