"""Random kill -9 soak of the watcher, two watchers on one origin, two `run`s in one checkout.

    cd <repo> && PYTHONPATH=automation:tests nice -n 19 python bench/soak.py --kills 100

Real git (a bare origin, clones, isolated config), the real CLI as subprocesses, the local
executor running real torchtune fine-tunes and inspect-ai evaluations of the tiny model
(`tunegit tiny-model --pretrain-steps 0`). Three parts, each printed as a row:

- kill: each trial pushes one new plan (one fine-tune + its evaluation), then starts
  `tunegit watch --interval 1` again and again, SIGKILLs it after a random 0..--max-wait
  seconds (a kill counts only when the process was still running), --kills/--trials times;
  then clean cycles until every step is terminal.
- two-watchers: two checkouts of the origin cycle `reconcile --once` at the same time
  until a new plan is done.
- two-runs: `tunegit run exp --no-wait` twice at once in one checkout.

Counted: duplicates (a job name with more than one local job directory, over every
checkout), lost (a job directory whose name no step of the origin's runs_status.yaml
records with that job's id; a started step not on the origin), tracebacks (exit 3 or
"Traceback" in a cycle not killed), unclean (a step not terminal, or `git status
--porcelain` not empty, at the end).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "automation"), str(REPO / "tests")]

from planfixtures import GITIGNORE, LOCAL_FILES, make_repo, tiny_plan  # noqa: E402
from tunegit.core.states import TERMINAL_STATES  # noqa: E402
from tunegit.core.status import parse  # noqa: E402
from tunegit.executors.local import JOBS_DIR  # noqa: E402

MODEL = Path(".tunegit/models/tiny-llama")
OUTPUTS = Path(".tunegit/outputs")
STATUS = "runs_status.yaml"


def git_env(root: Path) -> dict[str, str]:
    home = root / "home"
    home.mkdir()
    config = root / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n[protocol \"file\"]\n\tallow = always\n")
    return {**os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": str(config),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Soak", "GIT_COMMITTER_NAME": "Soak",
            "GIT_AUTHOR_EMAIL": "soak@example.com", "GIT_COMMITTER_EMAIL": "soak@example.com",
            "GIT_TERMINAL_PROMPT": "0", "XDG_CACHE_HOME": str(root / "xdg-cache"),
            "PYTHONPATH": os.pathsep.join([str(REPO / "automation"),
                                           os.environ.get("PYTHONPATH", "")])}


class Lab:
    """A bare origin, a seed clone that pushes plans, and watcher checkouts."""

    def __init__(self, root: Path, env: dict[str, str], model: Path) -> None:
        self.root, self.env, self.model = root, env, model
        self.origin = root / "origin.git"
        self.git(root, "init", "-q", "--bare", str(self.origin))
        self.seed = root / "seed"
        self.git(root, "clone", "-q", str(self.origin), str(self.seed))
        make_repo(self.seed, files=LOCAL_FILES, gitignore=GITIGNORE)
        self.git(self.seed, "add", "-A")
        self.git(self.seed, "commit", "-qm", "Seed")
        self.git(self.seed, "push", "-q", "origin", "HEAD:main")

    def git(self, cwd: Path, *args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=cwd, env=self.env, capture_output=True,
                              text=True, check=False)
        if proc.returncode:
            raise RuntimeError(f"git {args}: {proc.stderr}")
        return proc.stdout

    def checkout(self, name: str) -> Path:
        dest = self.root / name
        self.git(self.root, "clone", "-q", str(self.origin), str(dest))
        shutil.copytree(self.model, dest / MODEL)
        return dest

    def push_plan(self, name: str) -> None:
        self.git(self.seed, "pull", "-q", "--ff-only", "origin", "main")
        text = tiny_plan(name, training={"max_steps_per_epoch": 2, "batch_size": 2,
                                         "max_seq_len": 64})
        (self.seed / "experiments" / name).mkdir(parents=True)
        (self.seed / "experiments" / name / "experiment.yaml").write_text(text)
        self.git(self.seed, "add", "-A")
        self.git(self.seed, "commit", "-qm", f"Plan {name}")
        self.git(self.seed, "push", "-q", "origin", "HEAD:main")

    def origin_steps(self, name: str) -> list | None:
        proc = subprocess.run(["git", "show", f"main:experiments/{name}/{STATUS}"],
                              cwd=self.origin, env=self.env, capture_output=True, text=True,
                              check=False)
        return parse(proc.stdout).steps() if proc.returncode == 0 else None

    def done(self, name: str) -> bool:
        steps = self.origin_steps(name)
        return bool(steps) and all(step.status in TERMINAL_STATES for _, _, step in steps)


def tunegit(env: dict[str, str], checkout: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tunegit", "-C", str(checkout), *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def crashed(proc: subprocess.Popen[str], err: str) -> bool:
    return proc.returncode == 3 or "Traceback" in err


def job_dirs(checkouts: list[Path]) -> list[tuple[str, str]]:
    """(name, job id) of every local job directory of these checkouts."""
    out = []
    for checkout in checkouts:
        jobs = checkout / OUTPUTS / JOBS_DIR
        for job in sorted(jobs.glob("local-*")) if jobs.is_dir() else []:
            name = (job / "name").read_text().strip() if (job / "name").is_file() else ""
            out.append((name, job.name))
    return out


def count(lab: Lab, names: list[str], checkouts: list[Path]) -> dict[str, int]:
    jobs = job_dirs(checkouts)
    per_name = collections.Counter(name for name, _ in jobs)
    recorded = {}
    unclean = 0
    for name in names:
        steps = lab.origin_steps(name) or []
        unclean += not steps or any(s.status not in TERMINAL_STATES for _, _, s in steps)
        recorded.update({s.job_name: s.job_id for _, _, s in steps if s.job_name})
    lost = sum(1 for name, job in jobs if recorded.get(name) != job and per_name[name] == 1)
    for checkout in checkouts:
        unclean += bool(lab.git(checkout, "status", "--porcelain").strip())
    return {"jobs": len(jobs), "duplicates": sum(n - 1 for n in per_name.values() if n > 1),
            "lost": lost, "unclean": unclean}


def settle(lab: Lab, env: dict[str, str], checkouts: list[Path], names: list[str],
           stats: dict[str, int], timeout: float) -> None:
    """Clean cycles (every checkout at once) until every step of ``names`` is terminal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = [tunegit(env, c, "reconcile", "--once") for c in checkouts]
        for proc in procs:
            _, err = proc.communicate()
            stats["cycles"] += 1
            stats["tracebacks"] += crashed(proc, err)
            if crashed(proc, err):
                print(err, file=sys.stderr)
        if all(lab.done(name) for name in names):
            # one more cycle each: the last status commit reaches every checkout
            for c in checkouts:
                tunegit(env, c, "reconcile", "--once").communicate()
            return
        time.sleep(1.0)


def kill_soak(lab: Lab, env: dict[str, str], kills: int, trials: int, max_wait: float,
              rng: random.Random) -> dict[str, int]:
    watcher = lab.checkout("w-kill")
    stats = collections.Counter(kills=0, cycles=0, tracebacks=0)
    names = []
    for trial in range(trials):
        name = f"kill{trial}"
        names.append(name)
        lab.push_plan(name)
        target = kills * (trial + 1) // trials
        while stats["kills"] < target:
            proc = tunegit(env, watcher, "watch", "--interval", "1")
            time.sleep(rng.uniform(0, max_wait))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                stats["kills"] += 1
            else:
                _, err = proc.communicate()
                stats["cycles"] += 1
                stats["tracebacks"] += crashed(proc, err)
        settle(lab, env, [watcher], [name], stats, timeout=600)
    return {**stats, **count(lab, names, [watcher])}


def two_watchers(root: Path, env: dict[str, str], model: Path,
                 trials: int) -> dict[str, int]:
    # A fresh origin: on the kill soak's, that soak's watcher holds the lease (20 min).
    (root / "pairs").mkdir()
    lab = Lab(root / "pairs", env, model)
    checkouts = [lab.checkout("w-a"), lab.checkout("w-b")]
    stats = collections.Counter(kills=0, cycles=0, tracebacks=0)
    names = [f"pair{trial}" for trial in range(trials)]
    for name in names:
        lab.push_plan(name)
        settle(lab, env, checkouts, [name], stats, timeout=600)
    return {**stats, **count(lab, names, checkouts)}


def two_runs(env: dict[str, str], root: Path, trials: int) -> dict[str, int]:
    """Two `tunegit run exp --no-wait` at once in one (fresh) checkout per trial; the model
    directory holds only a config.json, so each job starts and fails at once."""
    stats = collections.Counter(kills=0, cycles=0, tracebacks=0, jobs=0, duplicates=0,
                                lost=0, unclean=0)
    for trial in range(trials):
        repo = make_repo(root / f"run{trial}", files=LOCAL_FILES, gitignore=GITIGNORE,
                         plans={"exp": tiny_plan("exp", factors={"lora_rank": [8, 16]})})
        for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-qm", "Plan")):
            subprocess.run(["git", *args], cwd=repo, env=env, check=True)
        (repo / MODEL).mkdir(parents=True)
        (repo / MODEL / "config.json").write_text("{}\n")
        procs = [tunegit(env, repo, "run", "exp", "--no-wait") for _ in range(2)]
        for proc in procs:
            _, err = proc.communicate()
            stats["cycles"] += 1
            stats["tracebacks"] += crashed(proc, err)
        jobs = job_dirs([repo])
        per_name = collections.Counter(name for name, _ in jobs)
        status = parse((repo / "experiments" / "exp" / STATUS).read_text()).steps()
        recorded = {s.job_name: s.job_id for _, _, s in status if s.job_name}
        stats["jobs"] += len(jobs)
        stats["duplicates"] += sum(n - 1 for n in per_name.values() if n > 1)
        stats["lost"] += sum(1 for name, job in jobs if recorded.get(name) != job)
    return dict(stats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100, help="kill -9 in all (default 100)")
    parser.add_argument("--trials", type=int, default=4,
                        help="plans (kill soak, two watchers) and run pairs (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-wait", type=float, default=3.0,
                        help="a kill comes 0..MAX_WAIT s after the start (default 3)")
    parser.add_argument("--parts", default="kill,two", type=lambda v: v.split(","),
                        help="which parts: kill, two (watchers and runs); default both")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="tunegit-soak-"))
    env = git_env(root)
    rows = []
    try:
        started = time.monotonic()
        made = subprocess.run(
            [sys.executable, "-m", "tunegit", "tiny-model", "--pretrain-steps", "0",
             "--dest", str(root / "model")], env=env, capture_output=True, text=True,
            check=False)
        if made.returncode:
            print(made.stdout, made.stderr, file=sys.stderr)
            return 1
        lab = Lab(root, env, root / "model")
        for label, part in (
                ("kill -9 at random", lambda: kill_soak(lab, env, args.kills, args.trials,
                                                        args.max_wait, rng)),
                ("two watchers, one origin", lambda: two_watchers(root, env, root / "model",
                                                                   args.trials)),
                ("two `run` in one checkout", lambda: two_runs(env, root, args.trials))):
            if label.split()[0] not in args.parts:
                continue
            t0 = time.monotonic()
            stats = part()
            rows.append((label, stats, time.monotonic() - t0))
            print(f"{label}: {stats} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
        total = time.monotonic() - started
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"kept {root}", file=sys.stderr)
    print(f"| part | trials | kills | cycles | jobs | duplicates | lost | tracebacks | unclean "
          f"| time |\n| {' | '.join(['---'] * 10)} |")
    for label, s, secs in rows:
        print(f"| {label} | {args.trials} | {s['kills']} | {s['cycles']} | {s['jobs']} | "
              f"{s['duplicates']} | {s['lost']} | {s['tracebacks']} | {s['unclean']} | "
              f"{secs:.0f} s |")
    print(f"\nseed {args.seed}, total {total:.0f} s")
    bad = sum(s["duplicates"] + s["lost"] + s["tracebacks"] + s["unclean"] for _, s, _ in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
