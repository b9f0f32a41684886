"""Scheduler load at the engine level: squeue/sacct processes per `engine.cycle` on real SLURM.

Needs the local SLURM up (`SLURM_LOCAL_CPUS=8 SLURM_LOCAL_GPUS=2 bash
.ci/slurm/start-local-slurm.sh`). Submits --jobs trivial `--hold` jobs (they stay pending,
one sbatch each: setup, not measured), then builds temp repositories on sites/local-slurm.yaml
whose runs_status.yaml files hold those jobs as submitted (fine-tuning and evaluation of each
run), and runs one `engine.cycle` over all experiments with counting wrappers first on PATH
(bench/slurm_calls.py's). Layouts: 1 experiment with 10 and with --jobs live jobs; 10
experiments x 1 run; --jobs live jobs spread over 100 and over 500 experiments. The naive
baseline, one squeue per job (`SlurmExecutor.poll([id])` for each), is measured in the same
run on the same jobs. All jobs are cancelled at the end.

    PYTHONPATH=automation python bench/perf_slurm.py [--jobs 1000]

Figures are recorded in bench/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_lab import REPO, machine, tiny_slurm_plan
from slurm_calls import Meter, counting_path, print_rows, submit_held

from tunegit.core import status as status_mod
from tunegit.core.expand import expand
from tunegit.core.states import SUBMITTED
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.executors import executor_factory
from tunegit.executors.slurm import SlurmExecutor
from tunegit.loop import engine


def make_repo(root: Path, experiments: int, jobs: list[str]) -> list[str]:
    """`experiments` plans sharing `jobs` (2 per run: fine-tuning + evaluation), all live."""
    for rel in ("sites/local-slurm.yaml", "tasks/capitalization"):
        src, dest = REPO / rel, root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
    runs_each = len(jobs) // 2 // experiments
    ws, names, it = Workspace(root), [], iter(jobs)
    for index in range(experiments):
        name = f"slurm_{index:04d}"
        names.append(name)
        directory = ws.experiment_dir(name)
        directory.mkdir(parents=True)
        ranks = [2 + r for r in range(runs_each)]
        (directory / PLAN_FILE).write_text(
            tiny_slurm_plan(name, "Scheduler-load bench", ranks))
        status = status_mod.initial(expand(ws.load_plan(directory / PLAN_FILE).plan), name)
        for run, key, step in status.steps():
            job_id = next(it)
            live = step.moved(SUBMITTED, "2026-11-24T00:00:00Z", job_id=job_id,
                              job_name=f"tg.{name}.{run}.{key or 'ft'}", attempt=1)
            status = status.with_step(run, key, live)
        (directory / STATUS_FILE).write_text(status_mod.dump(status))
    return names


def engine_row(meter: Meter, experiments: int, jobs: list[str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="tunegit-perf-slurm-") as tmp:
        root = Path(tmp)
        names = make_repo(root, experiments, jobs)
        ws = Workspace(root)
        cycle: dict[str, object] = {}
        with meter.measure(cycle):
            result = engine.cycle(ws, names, now="2026-11-24T00:00:01Z", plan_commit=None,
                                  executor_for=executor_factory(ws))
        assert not result.errors, result.errors[:3]
        assert result.live == len(jobs), (result.live, len(jobs))
        return cycle


def naive_row(meter: Meter, jobs: list[str]) -> dict[str, object]:
    executor = SlurmExecutor()
    cycle: dict[str, object] = {}
    with meter.measure(cycle):
        for job_id in jobs:
            assert job_id in executor.poll([job_id]).jobs
    return cycle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="perf-slurm-")) / "calls.log"
    meter = Meter(log)
    tag = uuid.uuid4().hex[:6]
    jobs = submit_held(args.jobs, tag)
    rows: list[tuple[str, dict[str, object]]] = []
    try:
        with counting_path(log):
            layouts = [(1, 10), (1, args.jobs), (10, 20), (100, args.jobs), (500, args.jobs)]
            for experiments, count in layouts:
                start = time.perf_counter()
                cycle = engine_row(meter, experiments, jobs[:count])
                cycle["total_s"] = round(time.perf_counter() - start, 1)
                rows.append((f"engine.cycle: {experiments} experiment(s), {count} live jobs",
                             cycle))
            rows.append((f"naive: one squeue per job, {args.jobs} live jobs",
                         naive_row(meter, jobs)))
    finally:
        SlurmExecutor().cancel(jobs)
    print(f"# {machine()}; real local SLURM; jobs are --hold jobs (pending)")
    print_rows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
