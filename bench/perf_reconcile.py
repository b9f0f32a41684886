"""Reconcile cost at lab scale: what a watcher cycle reads and burns when there is little to do.

Builds (in a temp dir) a bare origin holding a lab repository (--experiments plans x --runs
runs, perf_lab.make_lab: 80 % completed with metrics, the rest pending, none live) and a
watcher clone whose state says the origin's tip was already reconciled. Then, in this
process, with a fake executor that answers "pending" and records its calls (tests/fakes.py;
no scheduler is touched here: perf_slurm.py does that):

1. nothing-to-do cycles (`cycle.reconcile_once`): CPU time per cycle (this process and its
   git children, from getrusage), files opened (audit hook `open`), runs_status.yaml files
   opened, git processes started (audit hook `subprocess.Popen`); next to it the naive way
   to find live experiments, parsing every runs_status.yaml (what the watcher did before);
2. one cycle after a human commit that changes one plan (that experiment must be the only
   one reconciled; files opened show what its analysis reads);
3. memory: --cycles nothing-to-do cycles in this same process on a repository of
   --rss-experiments experiments (a cycle is ~14 git processes, ~0.1 s: 10,000 cycles take
   ~20 min), RSS (VmRSS) sampled every --sample cycles.

    PYTHONPATH=automation python bench/perf_reconcile.py [--experiments 500] [--cycles 10000]

Figures are recorded in bench/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from perf_lab import git, git_env, machine, make_lab, plan_text

from fakes import PendingExecutor
from tunegit.edges.workspace import STATUS_FILE, Workspace
from tunegit.files import read_status
from tunegit.loop.cycle import STATE_FILE, WatchConfig, WatchState, has_work, reconcile_once


class Audit:
    """Counts `open` and `subprocess.Popen` audit events while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.opens: Counter[str] = Counter()
        self.procs = 0
        sys.addaudithook(self.hook)

    def hook(self, event: str, args: tuple[object, ...]) -> None:
        if not self.on:
            return
        if event == "open" and isinstance(args[0], str | Path):
            self.opens[str(args[0])] += 1
        elif event == "subprocess.Popen":
            self.procs += 1

    def reset(self) -> None:
        self.opens.clear()
        self.procs = 0


def cpu_s() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def setup(base: Path, experiments: int, runs: int) -> tuple[Path, Path, dict[str, str]]:
    env = git_env(base / "home")
    os.environ.update({k: env[k] for k in ("HOME", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_NOSYSTEM",
                                           "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL",
                                           "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")})
    seed, origin, watcher = base / "seed", base / "origin.git", base / "watcher"
    seed.mkdir()
    make_lab(seed, experiments, runs)
    git(base, env, "init", "-q", "--bare", str(origin))
    git(seed, env, "init", "-q")
    git(seed, env, "add", "-A")
    git(seed, env, "commit", "-q", "-m", "lab")
    git(seed, env, "push", "-q", str(origin), "HEAD:main")
    git(base, env, "clone", "-q", str(origin), str(watcher))
    tip = git(watcher, env, "rev-parse", "HEAD").strip()
    WatchState(tip, ()).save(watcher / ".git" / STATE_FILE)  # steady state: all reconciled
    return seed, watcher, env


def measure(config: WatchConfig, audit: Audit, executor: PendingExecutor, cycles: int,
            ) -> dict[str, float]:
    audit.reset()
    polls0 = len(executor.polls)
    cpu0, wall0 = cpu_s(), time.perf_counter()
    audit.on = True
    chosen: set[str] = set()
    for _ in range(cycles):
        report = reconcile_once(config, executor_for=lambda site: executor)
        chosen |= set(report.experiments)
    audit.on = False
    status = sum(n for p, n in audit.opens.items() if p.endswith("runs_status.yaml"))
    return {"cpu_ms": (cpu_s() - cpu0) * 1000 / cycles,
            "wall_ms": (time.perf_counter() - wall0) * 1000 / cycles,
            "opens": sum(audit.opens.values()) / cycles, "status_opens": status / cycles,
            "git": audit.procs / cycles, "polls": (len(executor.polls) - polls0) / cycles,
            "reconciled": len(chosen)}


def measure_naive(watcher: Path, audit: Audit, cycles: int) -> dict[str, float]:
    """The naive way to find live experiments: parse every runs_status.yaml each cycle (what
    the watcher did before it kept them in its state), alone, without git."""
    ws = Workspace(watcher)
    audit.reset()
    cpu0, wall0 = cpu_s(), time.perf_counter()
    audit.on = True
    for _ in range(cycles):
        for name in ws.experiments():
            has_work(read_status(ws.experiment_dir(name) / STATUS_FILE), pending=False)
    audit.on = False
    status = sum(n for p, n in audit.opens.items() if p.endswith("runs_status.yaml"))
    return {"cpu_ms": (cpu_s() - cpu0) * 1000 / cycles,
            "wall_ms": (time.perf_counter() - wall0) * 1000 / cycles,
            "opens": sum(audit.opens.values()) / cycles, "status_opens": status / cycles,
            "git": audit.procs / cycles, "polls": 0.0, "reconciled": 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=20, help="cycles averaged for the costs")
    parser.add_argument("--cycles", type=int, default=10_000, help="cycles for the RSS curve")
    parser.add_argument("--sample", type=int, default=1_000)
    parser.add_argument("--rss-experiments", type=int, default=10,
                        help="experiments of the repository the RSS cycles run on")
    args = parser.parse_args()
    audit = Audit()
    executor = PendingExecutor(first_id=1001)
    with tempfile.TemporaryDirectory(prefix="tunegit-perf-reconcile-") as tmp:
        base = Path(tmp)
        seed, watcher, env = setup(base, args.experiments, args.runs)
        config = WatchConfig(watcher)
        idle = measure(config, audit, executor, args.repeat)
        naive = measure_naive(watcher, audit, args.repeat)
        # one human commit changing one (pending) plan
        name = f"lab_{args.experiments - 1:04d}"
        plan = seed / "experiments" / name / "experiment.yaml"
        plan.write_text(plan_text(args.experiments - 1, args.runs, "lab").replace(
            "batch_size: 8", "batch_size: 4"), encoding="utf-8")
        git(seed, env, "commit", "-q", "-am", f"{name}: batch size 4")
        git(seed, env, "push", "-q", str(base / "origin.git"), "HEAD:main")
        one = measure(config, audit, executor, 1)
        # its jobs are now live: the next cycles reconcile it (and only it) every time
        live = measure(config, audit, executor, 3)
    samples = []
    with tempfile.TemporaryDirectory(prefix="tunegit-perf-rss-") as tmp:
        _, watcher, _ = setup(Path(tmp), args.rss_experiments, args.runs)
        config = WatchConfig(watcher)
        reconcile_once(config, executor_for=lambda site: executor)
        gc.collect()
        samples.append((0, rss_kib(), 0.0))
        start = time.perf_counter()
        for i in range(1, args.cycles + 1):
            reconcile_once(config, executor_for=lambda site: executor)
            if i % args.sample == 0:
                samples.append((i, rss_kib(), time.perf_counter() - start))
    print(f"# {machine()}; {args.experiments} experiments x {args.runs} runs")
    print("| cycle | experiments reconciled | CPU ms/cycle (incl. git) | wall ms/cycle | "
          "files opened/cycle | runs_status.yaml opened/cycle | git processes/cycle | "
          "polls/cycle |")
    print("|---|---|---|---|---|---|---|---|")
    for label, m in (("nothing to do", idle),
                     ("naive: parse every runs_status.yaml to find live jobs (no git)", naive),
                     ("one plan changed by a human commit", one),
                     ("that experiment's jobs live, nothing else to do", live)):
        print(f"| {label} | {m['reconciled']:.0f} | {m['cpu_ms']:.0f} | {m['wall_ms']:.0f} | "
              f"{m['opens']:.0f} | {m['status_opens']:.0f} | {m['git']:.0f} | "
              f"{m['polls']:.0f} |")
    print(f"\nRSS over {args.cycles} nothing-to-do cycles in one process "
          f"({args.rss_experiments} experiments):")
    print("| cycles | VmRSS MiB | elapsed s |")
    print("|---|---|---|")
    for i, kib, elapsed in samples:
        print(f"| {i} | {kib / 1024:.1f} | {elapsed:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
