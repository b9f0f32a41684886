"""A lab-scale experiments repository for the perf_* benches (shared helpers, no timing here).

``make_lab(root, experiments=500, runs=40)`` writes `experiments` plans of `runs` runs each
(4 LoRA ranks x runs/4 learning rates, one evaluation per run) on the della site, and their
runs_status.yaml as tunegit writes them: the first `finished` fraction completed, with the
metrics and config that harvest records (so every check collects them as priors), the rest
pending. Statuses are built with tunegit's own expand + status serializer, so `tunegit check`
finds them up to date. Nothing is written into this checkout.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AUTOMATION = REPO / "automation"
if str(AUTOMATION) not in sys.path:
    sys.path.insert(0, str(AUTOMATION))

from tunegit.core import status as status_mod  # noqa: E402
from tunegit.core.expand import expand  # noqa: E402
from tunegit.core.states import COMPLETED  # noqa: E402
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace  # noqa: E402

MODELS = ("Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct", "Llama-3.1-8B-Instruct")
STAMP = "2026-11-01T10:00:00Z"

PLAN = """\
name: {name}
question: Lab-scale bench plan {index} ({runs} runs)
site: {site}
models: [meta-llama/{model}]
dataset: {{path: tasks/capitalization/input/words_8L_80P_10000.json}}
factors:
  lora_rank: [4, 8, 16, 32]
  learning_rate: [{rates}]
controls: false
run_name: "r{{lora_rank}}_lr{{learning_rate}}"
training: {{epochs: 2, batch_size: 8, packed: false, max_seq_len: 512}}
evaluation:
  epochs: last
  tasks:
    - {{name: capitalization_8L, script: tasks/capitalization/eval.py, dataset: training}}
"""


TINY_SLURM_PLAN = """\
name: {name}
type: sanity_check
question: {question}
site: local-slurm
models: [tunegit/tiny-llama]
dataset: {{path: tasks/capitalization/input/words_5L_80P_200.json}}
factors: {{lora_rank: {ranks}}}
controls: false
run_name: "r{{lora_rank}}"
training: {{epochs: 1, batch_size: 4, packed: false, max_seq_len: 256, max_steps_per_epoch: 5}}
evaluation:
  epochs: last
  tasks:
    - {{name: capitalization, script: tasks/capitalization/eval.py, dataset: training,
       max_tokens: 8}}
"""


def tiny_slurm_plan(name: str, question: str, ranks: Sequence[int] = (8,)) -> str:
    """A tiny-model plan on sites/local-slurm.yaml, one run per LoRA rank (the SLURM benches)."""
    return TINY_SLURM_PLAN.format(name=name, question=question, ranks=list(ranks))


def exp_name(index: int) -> str:
    return f"lab_{index:04d}"


def plan_text(index: int, runs: int = 40, site: str = "della") -> str:
    rates = ", ".join(f"{1 + i}.0e-{4 + index % 2}" for i in range(max(1, runs // 4)))
    return PLAN.format(name=exp_name(index), index=index, runs=runs, site=site,
                       model=MODELS[index % len(MODELS)], rates=rates)


def completed_status(ws: Workspace, name: str, model: str) -> status_mod.StatusFile:
    """Every step completed, with harvest-shaped metrics and config on fine-tuning steps."""
    plan_path = ws.experiment_dir(name) / PLAN_FILE
    exp = expand(ws.load_plan(plan_path).plan)
    status = status_mod.initial(exp, name)
    for i, (run, key, step) in enumerate(status.steps()):
        extra: dict[str, object] = {}
        if key is None:
            r = exp.run(run)
            extra = {
                "metrics": {"it_per_s": round(2.0 + (i % 7) / 10, 3), "tokens_per_s": 1800.0,
                            "peak_memory_gib": 18.5, "peak_memory_kind": "training",
                            "checkpoint_gib": 0.05, "epochs_saved": 2, "final_loss": 0.12,
                            "train_minutes": 11.0},
                "config": {"model": model, "gpu_type": "A100-80GB", "batch_size": r.batch_size,
                           "packed": r.packed, "max_seq_len": r.max_seq_len,
                           "lora_rank": r.lora_rank, "epochs": r.epochs,
                           "train_samples": 8000},
            }
        else:
            extra = {"score": 0.5, "metric": "accuracy"}
        done = step.moved(COMPLETED, STAMP, job_id=str(100000 + i), output=f"/out/{name}/{run}",
                          job_name=f"tg.{name}.{run}.{key or 'ft'}", attempt=1,
                          submitted=STAMP, started=STAMP, ended=STAMP, elapsed_s=660.0,
                          exit_code=0, **extra)
        status = status.with_step(run, key, done)
    return status


def make_lab(root: Path, experiments: int = 500, runs: int = 40, finished: float = 0.8,
             site: str = "lab") -> list[str]:
    """Write the repository under ``root``; returns the experiment names.

    Site "lab" is sites/della.yaml (A100s, SLURM) with its output_dir inside the repository
    (.tunegit/, git-ignored), so a reconcile renders nothing outside the temp dir.
    """
    for sub in ("sites", "tasks"):
        shutil.copytree(REPO / sub, root / sub, dirs_exist_ok=True)
    della = (REPO / "sites" / "della.yaml").read_text(encoding="utf-8")
    (root / "sites" / "lab.yaml").write_text(
        della.replace("output_dir: /scratch/gpfs/$USER/ck-outputs", "output_dir: .tunegit/out"),
        encoding="utf-8")
    (root / ".gitignore").write_text(".tunegit/\n__pycache__/\n", encoding="utf-8")
    ws = Workspace(root)
    names = []
    for index in range(experiments):
        name = exp_name(index)
        names.append(name)
        directory = ws.experiment_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / PLAN_FILE).write_text(plan_text(index, runs, site), encoding="utf-8")
        if index < experiments * finished:
            status = completed_status(ws, name, MODELS[index % len(MODELS)])
        else:
            plan_path = directory / PLAN_FILE
            status = status_mod.initial(expand(ws.load_plan(plan_path).plan), name)
        (directory / STATUS_FILE).write_text(status_mod.dump(status), encoding="utf-8")
    return names


# --- git and processes -------------------------------------------------------------------------

def git_env(home: Path) -> dict[str, str]:
    """An isolated git identity and config (no ~/.gitconfig read or written)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "gitconfig"
    config.write_text("[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n", encoding="utf-8")
    return {**os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": str(config),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "b@x",
            "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "b@x",
            "PYTHONPATH": str(AUTOMATION)}


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode:
        sys.exit(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def archive(rev: str, dest: Path) -> Path:
    """automation/ as of ``rev`` (git archive) under ``dest``: a PYTHONPATH for the code before
    (templates/ too: the package reaches it through a symlink)."""
    dest.mkdir(parents=True, exist_ok=True)
    tar = subprocess.run(["git", "-C", str(REPO), "archive", rev, "automation", "templates"],
                         capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    return dest / "automation"


def timed(cmd: Sequence[str], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return elapsed


def alternate(commands: Mapping[str, Sequence[str]], env: dict[str, str], repeat: int,
              cwd: Path | None = None) -> dict[str, float]:
    """Median seconds per command, the commands interleaved (A B C A B C ...) after a warm-up,
    so machine noise hits all of them alike."""
    samples: dict[str, list[float]] = {k: [] for k in commands}
    for i in range(repeat + 1):
        for label, cmd in commands.items():
            elapsed = timed(cmd, env, cwd)
            if i:
                samples[label].append(elapsed)
    return {k: statistics.median(v) for k, v in samples.items()}


def machine() -> str:
    import platform

    return (f"{platform.python_implementation()} {platform.python_version()} on "
            f"{platform.machine()}, {os.cpu_count()} CPUs")
