"""Run the reliability suite several times and print the figures for bench/RELIABILITY.md.

    cd <repo> && PYTHONPATH=automation:tests python bench/reliability.py --repeat 3

Each scenario is a pytest test that fails on a duplicate submission, a lost or
contradictory status, an unclean checkout, or a traceback (exit 3); so "runs passed" is
"runs with duplicates 0, lost status 0, tracebacks 0". SLURM scenarios need the local
cluster (.ci/slurm/start-local-slurm.sh) and are reported as skipped without it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITES = {  # file -> how many times to repeat it relative to --repeat (1: once per repeat)
    "tests/test_crash_safety.py": 1,
    "tests/test_scheduler_faults.py": 1,
    "tests/test_git_faults.py": 1,
    "tests/test_trust.py": 1,
    "tests/test_hostile_plans.py": 1,
}
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|xfailed|error|errors|deselected)")


def run(suite: str) -> tuple[dict[str, int], float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-rs", suite], cwd=REPO, capture_output=True, text=True,
                          check=False)
    counts: dict[str, int] = {}
    last = [line for line in proc.stdout.splitlines() if SUMMARY.search(line)]
    for n, kind in SUMMARY.findall(last[-1] if last else ""):
        counts[kind] = counts.get(kind, 0) + int(n)
    if proc.returncode not in (0, 1, 5):
        counts["crashed"] = 1
    if proc.returncode == 1:
        print(proc.stdout[-3000:], file=sys.stderr)
    return counts, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("suites", nargs="*", default=list(SUITES))
    args = parser.parse_args()
    print("| suite | repeats | tests passed | failed | skipped | xfailed | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    bad = 0
    for suite in args.suites:
        total: dict[str, int] = {}
        seconds = 0.0
        for _ in range(args.repeat):
            counts, took = run(suite)
            seconds += took
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        failed = total.get("failed", 0) + total.get("error", 0) + total.get("errors", 0)
        bad += failed + total.get("crashed", 0)
        print(f"| {suite} | {args.repeat} | {total.get('passed', 0)} | {failed} | "
              f"{total.get('skipped', 0)} | {total.get('xfailed', 0)} | {seconds:.0f} |",
              flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
