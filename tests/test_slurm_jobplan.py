"""The script a reviewer reads is what runs: a job submitted through tunegit to the real
local SLURM (.ci/slurm/start-local-slurm.sh) is, by SLURM's own `scontrol show job`, what its
rendered script's #SBATCH header says, and sbatch got no resource flag besides the script."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from planfixtures import WHOLE_EPOCH, tiny_plan
from test_local_executor import job_repo
from test_slurm_executor import cluster_state
from tunegit.core.jobplan import header_options, job_name
from tunegit.core.reconcile import Submission
from tunegit.edges.analysis import analyse
from tunegit.edges.scaffold import apply_writes, plan_writes, render_context, render_files
from tunegit.edges.workspace import PLAN_FILE, Workspace
from tunegit.executors import executor_factory
from tunegit.loop.engine import job_plan

_DOWN = cluster_state()
pytestmark = [pytest.mark.slurm, pytest.mark.skipif(bool(_DOWN), reason=_DOWN)]

# A GPU site on the local cluster (2 fake GPUs in its gres.conf): every resource the
# header can carry that this cluster accepts.
SITE = """\
executor: slurm
models_dir: .tunegit/models
output_dir: .tunegit/slurm-outputs
gpu: {type: A100-80GB, memory_gib: 80, count: 2}
device: cpu
dtype: fp32
slurm: {partition: debug, cpus_per_task: 2, mem_gb: 1, min_time_minutes: 95,
        time_limit_max_minutes: 120,
        finetune: {mem_gb: 3},
        evaluation: {cpus_per_task: 1, mem_gb: 2, gpus: 2, partition: debug}}
"""
EVAL = "capitalization_epoch_0"

# Overrides of the tiny plan: one whole-epoch fine-tune on the SLURM site.
PLAN = {"question": "Does SLURM run what the script says?", "site": "gpu-slurm",
        "factors": None, "run_name": "{model}", "training": WHOLE_EPOCH}

# #SBATCH option -> the field of `scontrol show job` that shows what SLURM made of it.
SCONTROL_FIELD = {
    "--job-name": "JobName", "--time": "TimeLimit", "--cpus-per-task": "CPUs/Task",
    "--mem": "MinMemoryNode", "--gres": "TresPerNode", "--partition": "Partition",
    "--chdir": "WorkDir", "--output": "StdOut", "--ntasks": "NumTasks", "--nodes": "NumNodes",
}


def scontrol_fields(job_id: str) -> dict[str, str]:
    text = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True,
                          text=True, check=True).stdout
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def as_scontrol(option: str, value: str) -> str:
    """An #SBATCH value written the way scontrol shows it."""
    if option == "--time":
        hours, minutes, seconds = value.split(":")
        return f"{int(hours):02d}:{minutes}:{seconds}"
    if option == "--gres":
        return f"gres:{value}"
    if option == "--nodes":
        return f"{value}-{value}"
    return value


@pytest.mark.parametrize("key", [None, EVAL], ids=["finetune", "evaluation"])
def test_scontrol_shows_what_the_rendered_header_says(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      key: str | None) -> None:
    """Each stage sized by its own block of the site file (slurm.finetune, slurm.evaluation)."""
    name = f"jobplan_{uuid.uuid4().hex[:6]}"
    repo = job_repo(tmp_path / "repo", plans={name: tiny_plan(name, **PLAN)})
    (repo / "sites" / "gpu-slurm.yaml").write_text(SITE)
    calls = tmp_path / "sbatch-calls.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f'#!/bin/bash\necho "$*" >> {calls}\n'
                                    f'exec {shutil.which("sbatch")} "$@"\n')
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    ws = Workspace(repo)
    a = analyse(ws, ws.experiment_dir(name) / PLAN_FILE)
    ctx = render_context(a)
    files = render_files(ctx, a.expansion.runs, a.expansion.evaluations, None)
    apply_writes(a.work_dir, files, plan_writes(a.work_dir, files))
    stage = job_name(name, "tiny-llama", key or "ft")
    job = job_plan(Submission("tiny-llama", key, stage), a, ctx)
    executor = executor_factory(ws)(a.site)
    job_id = executor.submit([job])[job.name]
    try:
        fields = scontrol_fields(job_id)
    finally:
        subprocess.run(["scancel", job_id], check=False)

    header = header_options(job.script.read_text())
    assert calls.read_text().split() == ["--parsable", str(job.script)]
    assert {option.split("=", 1)[0] for option in header} == set(SCONTROL_FIELD)
    for option, value in (line.split("=", 1) for line in header):
        assert fields[SCONTROL_FIELD[option]] == as_scontrol(option, value), option
    assert fields["JobName"] == stage
    assert fields["TimeLimit"] == "01:35:00" and fields["Partition"] == "debug"
    expected = {None: ("gres:gpu:1", "2", "3G"), EVAL: ("gres:gpu:2", "1", "2G")}[key]
    assert (fields["TresPerNode"], fields["CPUs/Task"], fields["MinMemoryNode"]) == expected
