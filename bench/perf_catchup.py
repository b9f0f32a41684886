"""Catching up: the experiments a watcher must look at after N commits landed while it was
down (`GitStore.changed_experiments`), against the naive per-commit walk it replaced.

A repository of --commits commits is made with `git fast-import`: every other commit a human
one touching one of 50 plans, the rest tunegit status commits (with the Tunegit-Experiment
trailer). Timed in the same run, each --repeat times (best kept):

- one `git log -m --name-only` over the range (what the watcher runs);
- the naive walk: `git rev-list`, then per commit a message read and a `git diff-tree`.

Both must return the same set.

    PYTHONPATH=automation python bench/perf_catchup.py [--commits 10000] [--repeat 3]

Figures are recorded in bench/RELIABILITY.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tunegit.edges.gitstore import OWN_TRAILER, GitStore, experiment_of

PLANS = 50


def fast_import(root: Path, commits: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    lines = []
    for n in range(commits):
        exp = f"e{n % PLANS:02d}"
        own = n % 2 == 1
        path = f"experiments/{exp}/{'runs_status.yaml' if own else 'experiment.yaml'}"
        body = f"name: {exp}\nrevision: {n}\n"
        message = (f"status: {exp} update {n}\n\n{OWN_TRAILER}: {exp}\n" if own
                   else f"Plan {exp} revision {n}\n")
        lines += ["commit refs/heads/main", f"mark :{n + 1}",
                  f"committer Bench <bench@example.com> {1_700_000_000 + n} +0000",
                  f"data {len(message.encode())}", message]
        if n:
            lines.append(f"from :{n}")
        lines += [f"M 100644 inline {path}", f"data {len(body.encode())}", body, ""]
    subprocess.run(["git", "-C", str(root), "fast-import", "--quiet"],
                   input="\n".join(lines).encode(), check=True)
    subprocess.run(["git", "-C", str(root), "checkout", "-q", "main"], check=True)


def naive(store: GitStore, since: str, until: str) -> set[str]:
    """One diff-tree per commit: what the watcher did before."""
    names: set[str] = set()
    for sha in store._git("rev-list", f"{since}..{until}").split():
        if store.is_own(sha):
            continue
        files = store._git("diff-tree", "--no-commit-id", "--name-only", "-r", "-m",
                           "--root", sha).split("\n")
        names |= {n for n in map(experiment_of, files) if n}
    return names


def best(fn, repeat: int) -> tuple[float, set[str]]:  # type: ignore[no-untyped-def]
    times, result = [], set()
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        fast_import(root, args.commits)
        store = GitStore(root)
        since = store._git("rev-list", "--max-parents=0", "HEAD").strip()
        until = store.head()
        one_log, new = best(lambda: store.changed_experiments(since, until), args.repeat)
        walk, old = best(lambda: naive(store, since, until), max(1, args.repeat // 3))
        if new != old:
            print(f"MISMATCH: {sorted(new ^ old)}", file=sys.stderr)
            return 1
        print(f"commits: {args.commits}, experiments found: {len(new)}")
        print(f"one git log over the range: {one_log:.2f} s")
        print(f"per-commit walk (naive):    {walk:.2f} s ({walk / one_log:.0f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
