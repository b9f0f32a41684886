"""Git growth and history speed: what status commits cost the repository, and reading them back.

1. Growth. A repository of --experiments plans x 40 runs (perf_lab plans, all pending) is
   committed and gc'ed; then 1,000 status transitions (per run: fine-tuning submitted,
   evaluation submitted, fine-tuning running, fine-tuning completed with harvest-shaped
   metrics, evaluation running, evaluation completed with a score) are written with
   tunegit's serializer and committed with the real `GitStore.commit` and `status_message`:
   in batches of --batches transitions per commit (the watcher: one commit per cycle), and
   one commit per transition (the naive approach), each in its own copy, in the same run.
   Reported: `git count-objects -v` size-pack growth after `git gc`, per 1,000 transitions.
2. History. A repository with --commits status commits is generated with `git fast-import`
   carrying exactly what the watcher commits (status files from `status.dump`, messages from
   `status_message`, one transition per commit); the measured experiment gets --own of them,
   the rest are spread over the other experiments (8 runs each, to keep the setup short).
   `tunegit history EXP` and `tunegit history EXP/RUN` are timed as whole processes against
   the floor `git log --format=%H -- experiments/EXP/runs_status.yaml`.

    PYTHONPATH=automation python bench/perf_git.py [--batches 1,10,50] [--commits 10000]

Figures are recorded in bench/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf_lab import alternate, archive, git, git_env, machine, make_lab, plan_text

from tunegit.core import status as status_mod
from tunegit.core.expand import expand
from tunegit.core.records import Transition
from tunegit.core.states import COMPLETED, RUNNING, SUBMITTED
from tunegit.edges.gitstore import GitStore, status_message
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.files import read_status, write_if_changed

STAMP = "2026-11-24T{:02d}:{:02d}:{:02d}Z"


def stamp(i: int) -> str:
    return STAMP.format(i // 3600 % 24, i // 60 % 60, i % 60)


def transitions(status: status_mod.StatusFile, name: str, start_id: int,
                ) -> Iterator[tuple[str, str | None, status_mod.Step, Transition]]:
    """The six transitions of each run, in the order a watcher records them."""
    job = start_id
    for run, record in status.runs.items():
        ft_id, ev_key = str(job), next(iter(record.evaluations))
        ev_id = str(job + 1)
        job += 2
        ft, ev = record.finetune, record.evaluations[ev_key]
        seq: list[tuple[str | None, status_mod.Step]] = []
        ft = ft.moved(SUBMITTED, "t", job_id=ft_id, job_name=f"tg.{name}.{run}.ft", attempt=1,
                      submitted_from="a" * 40, rendered_hash="b" * 16, submitted="t",
                      log=f"/out/{name}/{run}/logs/finetune.log")
        seq.append((None, ft))
        ev = ev.moved(SUBMITTED, "t", job_id=ev_id, job_name=f"tg.{name}.{run}.{ev_key}",
                      attempt=1, submitted_from="a" * 40, rendered_hash="b" * 16,
                      submitted="t", log=f"/out/{name}/{run}/logs/{ev_key}.log")
        seq.append((ev_key, ev))
        ft = ft.moved(RUNNING, "t", started="t")
        seq.append((None, ft))
        ft = ft.moved(COMPLETED, "t", ended="t", elapsed_s=660.0, exit_code=0,
                      output=f"/out/{name}/{run}",
                      metrics={"it_per_s": 2.13, "tokens_per_s": 1800.5, "peak_memory_gib": 18.5,
                               "peak_memory_kind": "training", "checkpoint_gib": 0.05,
                               "epochs_saved": 2, "final_loss": 0.1234, "train_minutes": 11.0},
                      config={"model": "Llama-3.2-1B-Instruct", "gpu_type": "A100-80GB",
                              "batch_size": 8, "packed": False, "max_seq_len": 512,
                              "epochs": 2, "train_samples": 8000})
        seq.append((None, ft))
        ev = ev.moved(RUNNING, "t", started="t")
        seq.append((ev_key, ev))
        ev = ev.moved(COMPLETED, "t", ended="t", elapsed_s=60.0, exit_code=0, score=0.875,
                      metric="accuracy", output=f"/out/{name}/{run}/eval")
        seq.append((ev_key, ev))
        for key, step in seq:
            old = status.step(run, key).status
            status = status.with_step(run, key, step)
            yield run, key, step, Transition(name, run, key, old, step.status, step.job_id)


def _stamped(step: status_mod.Step, i: int) -> status_mod.Step:
    """Replace the placeholder "t" times by real, increasing ones."""
    keys = ("last_updated", "submitted", "started", "ended")
    changes: dict[str, Any] = {k: stamp(i) for k in keys if getattr(step, k) == "t"}
    return dataclasses.replace(step, **changes)


def stream(names: list[str], statuses: dict[str, status_mod.StatusFile], count: int,
           ) -> Iterator[tuple[int, str, status_mod.StatusFile, Transition]]:
    """``count`` transitions over the experiments in turn: (index, experiment, status after)."""
    i = 0
    gens = {n: transitions(statuses[n], n, 10_000 * (k + 1)) for k, n in enumerate(names)}
    while i < count:
        progressed = False
        for n in names:
            item = next(gens[n], None)
            if item is None:
                continue
            run, key, step, t = item
            statuses[n] = statuses[n].with_step(run, key, _stamped(step, i))
            yield i, n, statuses[n], t
            i += 1
            progressed = True
            if i >= count:
                return
        if not progressed:
            return


def size_pack(repo: Path, env: dict[str, str]) -> int:
    git(repo, env, "gc", "-q")
    for line in git(repo, env, "count-objects", "-v").splitlines():
        if line.startswith("size-pack:"):
            return int(line.split()[1]) * 1024
    return 0


def growth(base: Path, env: dict[str, str], batch: int, count: int, experiments: int,
           ) -> tuple[int, int]:
    """(bytes added to the pack, commits) for ``count`` transitions, ``batch`` per commit."""
    repo = base / f"growth-{batch}"
    repo.mkdir()
    names = make_lab(repo, experiments, 40, finished=0.0)
    git(repo, env, "init", "-q")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "-m", "plans")
    before = size_pack(repo, env)
    store = GitStore(repo)
    statuses = {n: read_status(repo / "experiments" / n / STATUS_FILE) for n in names}
    assert all(statuses.values())
    pending: list[Transition] = []
    touched: set[str] = set()
    commits = 0
    plain = {n: s for n, s in statuses.items() if s is not None}
    for _, name, status, t in stream(names, plain, count):
        path = repo / "experiments" / name / STATUS_FILE
        write_if_changed(path, status_mod.dump(status))
        pending.append(t)
        touched.add(name)
        if len(pending) >= batch:
            store.commit([repo / "experiments" / n / STATUS_FILE for n in sorted(touched)],
                         status_message(pending, "a" * 40))
            commits += 1
            pending, touched = [], set()
    if pending:
        store.commit([repo / "experiments" / n / STATUS_FILE for n in sorted(touched)],
                     status_message(pending, "a" * 40))
        commits += 1
    return size_pack(repo, env) - before, commits


def fast_import_repo(repo: Path, env: dict[str, str], commits: int, own: int,
                     experiments: int) -> str:
    """A repository with ``commits`` one-transition status commits; returns the target name."""
    names = make_lab(repo, experiments, 8, finished=0.0)  # small others: a faster setup
    target, others = names[0], names[1:]
    plan = repo / "experiments" / target / PLAN_FILE
    plan.write_text(plan_text(0, 40), encoding="utf-8")  # the one whose history is read
    (plan.parent / STATUS_FILE).write_text(status_mod.dump(status_mod.initial(
        expand(Workspace(repo).load_plan(plan).plan), target)), encoding="utf-8")
    git(repo, env, "init", "-q")
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "-m", "plans")
    statuses = {n: read_status(repo / "experiments" / n / STATUS_FILE) for n in names}
    plain = {n: s for n, s in statuses.items() if s is not None}
    own_stream = stream([target], plain, own)
    other_stream = stream(others, plain, commits - own)
    every = max(1, commits // max(1, own))
    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=repo, env=env,
                            stdin=subprocess.PIPE)
    assert proc.stdin is not None
    out = proc.stdin
    for i in range(commits):
        item = next(own_stream, None) if i % every == 0 else None
        item = item or next(other_stream, None) or next(own_stream, None)
        if item is None:
            break
        _, name, status, t = item
        body = status_mod.dump(status).encode()
        message = status_message([t], "a" * 40).encode()
        when = 1_790_000_000 + i
        out.write(b"commit refs/heads/main\n")
        out.write(f"author tunegit <tunegit@x> {when} +0000\n".encode())
        out.write(f"committer tunegit <tunegit@x> {when} +0000\n".encode())
        out.write(b"data %d\n" % len(message) + message + b"\n")
        if i == 0:
            out.write(b"from refs/heads/main^0\n")
        out.write(f"M 100644 inline experiments/{name}/{STATUS_FILE}\n".encode())
        out.write(b"data %d\n" % len(body) + body + b"\n")
    out.close()
    assert proc.wait() == 0
    git(repo, env, "reset", "-q", "--hard", "main")
    git(repo, env, "gc", "-q")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transitions", type=int, default=1000)
    parser.add_argument("--batches", default="1,10,50")
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--own", type=int, default=240,
                        help="of --commits, those of the experiment whose history is read")
    parser.add_argument("--experiments", type=int, default=210)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-growth", action="store_true")
    parser.add_argument("--baseline", metavar="REV",
                        help="also time `tunegit history` as of this revision of automation/ "
                        "(git archive), interleaved with the working tree's")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="tunegit-perf-git-") as tmp:
        base = Path(tmp)
        env = git_env(base / "home")
        os.environ.update({k: v for k, v in env.items() if k.startswith(("GIT_", "HOME"))})
        rows = []
        for batch in ([] if args.skip_growth else [int(b) for b in args.batches.split(",")]):
            added, commits = growth(base, env, batch, args.transitions, 5)
            rows.append((batch, commits, added))
            shutil.rmtree(base / f"growth-{batch}")
        repo = base / "history"
        repo.mkdir()
        target = fast_import_repo(repo, env, args.commits, args.own, args.experiments)
        total = int(git(repo, env, "rev-list", "--count", "HEAD"))
        own = len(git(repo, env, "log", "--format=%H", "--",
                      f"experiments/{target}/{STATUS_FILE}").split())
        run = "r4_lr1e-4"
        tg = [py, "-m", "tunegit", "-C", str(repo), "history"]
        commands = {
            "floor": ["git", "-C", str(repo), "log", "--format=%H", "--",
                      f"experiments/{target}/{STATUS_FILE}"],
            "exp": [*tg, target],
            "run": [*tg, f"{target}/{run}"],
        }
        if args.baseline:
            old = archive(args.baseline, base / "baseline")
            commands["base-exp"] = ["env", f"PYTHONPATH={old}", *tg, target]
        medians = alternate(commands, env, args.repeat)
    print(f"# {machine()}")
    if rows:
        naive = next((added for batch, _, added in rows if batch == 1), None)
        print(f"\n{args.transitions} transitions over 5 experiments x 40 runs:")
        print("| transitions per commit | commits | size-pack growth (after gc) | "
              "bytes per transition | vs one commit per transition |")
        print("|---|---|---|---|---|")
        for batch, commits, added in rows:
            ratio = f"{added / naive:.2f}" if naive else "-"
            print(f"| {batch} | {commits} | {added / 1024:.0f} KiB | "
                  f"{added / args.transitions:.0f} | {ratio} |")
    print(f"\nhistory: {total} commits in the repository (fast-import, real serializer and "
          f"messages), {own} of them touch experiments/{target}/{STATUS_FILE}; median of "
          f"{args.repeat}")
    print("| command | median | x floor |")
    print("|---|---|---|")
    floor = medians["floor"]
    for key, label in (("floor", f"git log --format=%H -- experiments/{target}/{STATUS_FILE}"),
                       ("exp", f"tunegit history {target}"),
                       ("run", f"tunegit history {target}/{run}"),
                       ("base-exp", f"tunegit history {target}, as of {args.baseline}")):
        if key not in medians:
            continue
        print(f"| {label} | {medians[key] * 1000:.0f} ms | {medians[key] / floor:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

