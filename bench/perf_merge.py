"""Merge to first sbatch: how long after a push to the protected branch the job is queued.

Needs the local SLURM up (`SLURM_LOCAL_CPUS=8 SLURM_LOCAL_GPUS=2 bash
.ci/slurm/start-local-slurm.sh`). Builds a bare origin (sites/local-slurm.yaml, the
capitalization task) and a watcher clone, and starts `tunegit watch --interval I` there as a
separate process with an `sbatch` wrapper first on PATH that stamps the time of each call
(and adds --hold, so no job actually runs; they are all cancelled at the end). For each
trigger, a developer clone pushes a new one-run plan to main and the bench waits for the
first sbatch stamped after the push started:

- `interval`: nothing tells the watcher; the next timer cycle fetches (`watch --interval 60`);
- `webhook`: the origin's post-receive hook touches .git/tunegit-wake in the watcher's
  checkout (what a post-receive hook on the cluster or a forge webhook's receiver would do);
  watchdog wakes the watcher (`watch --interval 60`);
- `short-interval`: a short timer, `watch --interval 5` (a fetch every 5 s).

    PYTHONPATH=automation python bench/perf_merge.py [--pushes 3]

Figures are recorded in bench/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_lab import REPO, archive, git, git_env, machine, tiny_slurm_plan

from tunegit.loop.daemon import WAKE_FILE

WRAPPER = """\
#!/bin/sh
stamp=$(date +%s.%N)
out=$("{real}" --hold "$@"); rc=$?
echo "$out"
echo "$stamp $out" >> "{log}"
exit $rc
"""


def setup(base: Path, env: dict[str, str]) -> tuple[Path, Path, Path]:
    origin, dev, watcher = base / "origin.git", base / "dev", base / "watcher"
    git(base, env, "init", "-q", "--bare", str(origin))
    git(base, env, "clone", "-q", str(origin), str(dev))
    for rel in ("sites/local-slurm.yaml", "tasks/capitalization"):
        src, dest = REPO / rel, dev / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dest)
    (dev / ".gitignore").write_text(".tunegit/\n__pycache__/\n")
    git(dev, env, "add", "-A")
    git(dev, env, "commit", "-q", "-m", "site and task")
    git(dev, env, "push", "-q", "origin", "HEAD:main")
    git(base, env, "clone", "-q", str(origin), str(watcher))
    return origin, dev, watcher


def first_sbatch_after(log: Path, since: float, timeout: float) -> float | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            stamp = float(line.split()[0])
            if stamp >= since:
                return stamp - since
        time.sleep(0.05)
    return None


def trial(base: Path, env: dict[str, str], mode: str, pushes: int, log: Path,
          timeout: float) -> list[float | None]:
    root = base / mode
    root.mkdir()
    origin, dev, watcher = setup(root, env)
    interval = "5" if mode == "short-interval" else "60"
    if mode == "webhook":
        hook = origin / "hooks" / "post-receive"
        hook.write_text(f"#!/bin/sh\ntouch '{watcher}/.git/{WAKE_FILE}'\n")
        hook.chmod(0o755)
    watch_log = root / "watch.log"
    with watch_log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "tunegit", "-C", str(watcher), "watch",
                                 "--interval", interval], env=env, stdout=sink,
                                stderr=subprocess.STDOUT, text=True)
    results: list[float | None] = []
    try:
        time.sleep(8)  # the first cycle (everything) is over; the timer is running
        for i in range(pushes):
            # Unique per bench run: SLURM still lists the last run's cancelled jobs (MinJobAge),
            # and tunegit adopts a pending step's job by its name (bench/RELIABILITY.md).
            name = f"merge_{mode.replace('-', '_')}_{os.getpid()}_{i}"
            plan = dev / "experiments" / name / "experiment.yaml"
            plan.parent.mkdir(parents=True)
            plan.write_text(tiny_slurm_plan(name, "Merge-to-sbatch bench"))
            subprocess.run([sys.executable, "-m", "tunegit", "-C", str(dev), "check", "--write",
                            "-q", f"experiments/{name}"], env=env, check=True,
                           capture_output=True)
            git(dev, env, "add", "-A")
            git(dev, env, "commit", "-q", "-m", f"plan {name}")
            git(dev, env, "pull", "-q", "--rebase", "origin", "main")
            pushed = time.time()  # before: the ref is visible (and the hook runs) mid-push
            git(dev, env, "push", "-q", "origin", "HEAD:main")
            results.append(first_sbatch_after(log, pushed, timeout))
            if results[-1] is None:
                print(f"{mode} push {i} at {pushed:.3f}: no sbatch within {timeout:g} s; the "
                      f"watcher said:\n{watch_log.read_text()}sbatch calls:\n"
                      f"{log.read_text() if log.exists() else ''}", file=sys.stderr)
            time.sleep(6 if mode != "interval" else 1)  # let the cycle commit and push
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def idle(base: Path, env: dict[str, str], seconds: float, label: str) -> tuple[int, float]:
    """(cycles, CPU seconds incl. git children) of `watch --interval 60` left alone."""
    root = base / f"idle-{label}"
    root.mkdir()
    _, _, watcher = setup(root, env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-m", "tunegit", "-C", str(watcher), "watch",
                             "--interval", "60"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    time.sleep(seconds)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cycles = sum(1 for line in output.splitlines() if re.match(r"[0-9a-f]{10}: ", line))
    return cycles, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--modes", default="webhook,short-interval,interval")
    parser.add_argument("--idle", type=float, default=60.0, metavar="SECONDS",
                        help="also run an untouched `watch --interval 60` this long (0: skip)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run the idle watcher as of this revision of automation/")
    args = parser.parse_args()
    real = shutil.which("sbatch")
    if real is None:
        sys.exit("sbatch is not on PATH: start SLURM first")
    with tempfile.TemporaryDirectory(prefix="tunegit-perf-merge-") as tmp:
        base = Path(tmp)
        env = git_env(base / "home")
        bindir, log = base / "bin", base / "sbatch.log"
        bindir.mkdir()
        wrapper = bindir / "sbatch"
        wrapper.write_text(WRAPPER.format(real=real, log=log))
        wrapper.chmod(0o755)
        env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
        rows = []
        idle_rows = []
        if args.idle and args.baseline:
            old = archive(args.baseline, base / "baseline")
            idle_rows.append((f"as of {args.baseline}",
                              idle(base, {**env, "PYTHONPATH": str(old)}, args.idle, "base")))
        if args.idle:
            idle_rows.append(("now", idle(base, env, args.idle, "now")))
        try:
            for mode in args.modes.split(","):
                timeout = 75.0 if mode == "interval" else 30.0
                rows.append((mode, trial(base, env, mode, args.pushes, log, timeout)))
        finally:
            ids = [line.split()[1].split(";")[0] for line in
                   (log.read_text().splitlines() if log.exists() else []) if len(line.split()) > 1]
            if ids:
                subprocess.run(["scancel", *ids], check=False)
    print(f"# {machine()}; real local SLURM; `tunegit watch` (default --min-gap 5)")
    print("| trigger | push -> first sbatch (each push) | median |")
    print("|---|---|---|")
    for mode, results in rows:
        shown = ", ".join("timeout" if r is None else f"{r:.1f} s" for r in results)
        done = [r for r in results if r is not None]
        median = f"{statistics.median(done):.1f} s" if done else "-"
        print(f"| {mode} | {shown} | {median} |")
    if idle_rows:
        print(f"\n| idle `watch --interval 60`, {args.idle:g} s | cycles | CPU s (incl. git) |")
        print("|---|---|---|")
    for label, (cycles, cpu) in idle_rows:
        print(f"| {label} | {cycles} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
