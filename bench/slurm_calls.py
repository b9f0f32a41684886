"""How many scheduler calls SlurmExecutor makes: per poll cycle, and per experiment submit.

Counts two ways on a live SLURM (start it with .ci/slurm/start-local-slurm.sh):
- processes: a directory of counting wrappers first on PATH (each logs its name,
  then execs the real squeue/sacct/sbatch/scancel);
- controller RPCs: the delta of ``sdiag``'s per-message-type counters.

Usage: PYTHONPATH=automation python bench/slurm_calls.py [--sizes 10,1000] [--runs 8]
Prints a markdown table; bench/SLURM_CALLS.md records one run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tunegit.core.jobplan import JobPlan, header_lines
from tunegit.executors.slurm import SlurmExecutor

PROGRAMS = ("squeue", "sacct", "sbatch", "scancel")
RPCS = (
    "REQUEST_JOB_INFO", "REQUEST_PARTITION_INFO", "REQUEST_SUBMIT_BATCH_JOB", "REQUEST_KILL_JOB",
)  # fmt: skip


@contextmanager
def counting_path(log: Path) -> Iterator[None]:
    """Put wrappers for PROGRAMS first on PATH for the duration."""
    folder = Path(tempfile.mkdtemp(prefix="slurm-count-"))
    for program in PROGRAMS:
        real = shutil.which(program)
        if real is None:
            sys.exit(f"{program} is not on PATH: start SLURM first")
        wrapper = folder / program
        wrapper.write_text(f'#!/bin/sh\necho {program} >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    old = os.environ["PATH"]
    os.environ["PATH"] = f"{folder}{os.pathsep}{old}"
    try:
        yield
    finally:
        os.environ["PATH"] = old
        shutil.rmtree(folder)


def rpc_counts() -> Counter[str]:
    text = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    found: Counter[str] = Counter()
    for name in RPCS:
        match = re.search(rf"^\s*{name}\s+\(\s*\d+\)\s+count:(\d+)", text, re.MULTILINE)
        found[name] = int(match.group(1)) if match else 0
    return found


class Meter:
    """Process calls (from the wrappers' log) and controller RPCs during a block."""

    def __init__(self, log: Path):
        self.log = log

    @contextmanager
    def measure(self, into: dict[str, object]) -> Iterator[None]:
        self.log.write_text("")
        before = rpc_counts()
        start = time.perf_counter()
        yield
        into["wall_ms"] = round((time.perf_counter() - start) * 1000, 1)
        into["calls"] = dict(Counter(self.log.read_text().split()))
        into["rpcs"] = {k: v for k, v in (rpc_counts() - before).items() if v}


def submit_held(count: int, tag: str) -> list[str]:
    """``count`` trivial jobs that stay pending (--hold), one sbatch each (setup, not measured)."""
    ids = []
    for index in range(count):
        argv = ["sbatch", "--parsable", "--hold", f"--job-name=tg.bench.{tag}.{index}",
                "--output=/dev/null", "--wrap=true"]  # fmt: skip
        ids.append(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip())
    return ids


def poll_rows(meter: Meter, sizes: list[int]) -> list[tuple[str, dict[str, object]]]:
    rows = []
    for size in sizes:
        tag = uuid.uuid4().hex[:6]
        ids = submit_held(size, tag)
        names = [f"tg.bench.{tag}.{i}" for i in range(size)]
        executor = SlurmExecutor()
        try:
            cycle: dict[str, object] = {}
            with meter.measure(cycle):
                poll = executor.poll(ids, names=names)
            assert len(poll.jobs) == size and len(poll.names) == size, poll.error
            rows.append((f"poll {size} live jobs (+ their names)", cycle))
            gone = [str(90_000_000 + i) for i in range(size)]  # ids squeue no longer lists
            cycle = {}
            with meter.measure(cycle):
                executor.poll(ids + gone)
            rows.append((f"poll {size} live + {size} aged-out ids", cycle))
        finally:
            cycle = {}
            with meter.measure(cycle):
                executor.cancel(ids)
            rows.append((f"cancel {size} jobs", cycle))
    return rows


def experiment_jobs(root: Path, runs: int, evals: bool) -> list[JobPlan]:
    jobs = []
    for index in range(runs):
        workdir = root / f"run{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        name = f"tg.bench.{root.name}.run{index}"
        ft = JobPlan(f"{name}.ft", workdir / "ft.sh", workdir, workdir / "ft.log")
        ft.script.write_text(f"#!/bin/bash\n{header_lines(ft)}true\n")
        jobs.append(ft)
        if evals:
            ev = JobPlan(f"{name}.eval", workdir / "eval.sh", workdir, workdir / "eval.log",
                         after=(f"{name}.ft",))
            ev.script.write_text(f"#!/bin/bash\n{header_lines(ev)}true\n")
            jobs.append(ev)
    return jobs


def submit_rows(meter: Meter, runs: int) -> list[tuple[str, dict[str, object]]]:
    rows = []
    for evals in (False, True):
        for arrays in (True, False):
            root = Path(tempfile.mkdtemp(prefix="tg-bench-"))
            jobs = experiment_jobs(root, runs, evals)
            cycle: dict[str, object] = {}
            with meter.measure(cycle):
                ids = SlurmExecutor(use_arrays=arrays).submit(jobs)
            SlurmExecutor().cancel(ids.values())
            what = f"{runs} runs" + (f" + {runs} evals (afterok)" if evals else "")
            rows.append((f"submit {what}, {'array' if arrays else 'one job per run'}", cycle))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp(prefix="slurm-calls-")) / "calls.log"
    meter = Meter(log)
    with counting_path(log):
        rows = poll_rows(meter, [int(s) for s in args.sizes.split(",")])
        rows += submit_rows(meter, args.runs)
    print_rows(rows)
    return 0


def print_rows(rows: Sequence[tuple[str, dict[str, object]]]) -> None:
    """The Markdown table bench/SLURM_CALLS.md and bench/PERFORMANCE.md record."""
    print("| what | processes | controller RPCs (sdiag delta) | wall ms |")
    print("| --- | --- | --- | --- |")
    for what, cycle in rows:
        print(f"| {what} | {cycle['calls']} | {cycle['rpcs']} | {cycle['wall_ms']} |")


if __name__ == "__main__":
    sys.exit(main())
