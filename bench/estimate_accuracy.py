"""Estimate error on held-out runs: estimates from the repository's history vs the fallback table.

Two steps, both reproducible from this checkout:

1. ``--generate`` (real measurements, ~8 minutes on 2 CPU cores): builds a temporary
   experiments repository (sites/local.yaml and tasks/ copied from this checkout), makes the
   tiny model, and runs ``tunegit run`` for real with the local executor on a few plans that
   vary batch size, epochs, LoRA rank, dataset size and packing. The completed runs'
   runs_status.yaml (machine paths scrubbed) and plans are saved as the fixtures under
   tests/fixtures/history/, next to a record made from the real torchtune SLURM log.

2. (default) leave-one-out: for every completed run with a measured ``train_minutes`` in
   tests/fixtures/history/, estimate it from the other runs (the history rule of
   tunegit.core.estimate) and from no priors at all (the fallback table), and report the median
   absolute percentage error |est - actual| / actual of each.

    PYTHONPATH=automation python bench/estimate_accuracy.py            # the comparison
    PYTHONPATH=automation python bench/estimate_accuracy.py --generate # re-measure first

Results with the command and the machine are recorded in bench/ESTIMATE_ACCURACY.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "history"
SCRUB = "__REPO__"

PLAN = """\
name: {name}
type: sanity_check
question: {question}
site: local
models: [tunegit/tiny-llama]
dataset: {{path: tasks/capitalization/input/{dataset}}}
factors: {factors}
run_name: "{run_name}"
training: {training}
evaluation:
  epochs: last
  tasks:
    - name: capitalization
      script: tasks/capitalization/eval.py
      dataset: training
      max_tokens: 8
"""

# (name, question, dataset, factors, run_name, training): 11 fine-tuning runs in all.
BENCH_PLANS = (
    ("bench_batch", "How does batch size change the tiny model's speed?", "words_5L_80P_200.json",
     "{batch_size: [2, 4, 8]}", "tiny_bs{batch_size}",
     "{epochs: 2, learning_rate: 1.0e-2, lora_rank: 8, packed: false, max_seq_len: 256, seed: 0}"),
    ("bench_rank_epochs", "Do LoRA rank and epochs change the time as expected?",
     "words_5L_80P_200.json", "{lora_rank: [8, 32], epochs: [2, 4]}",
     "tiny_rank{lora_rank}_ep{epochs}",
     "{batch_size: 4, learning_rate: 1.0e-2, packed: false, max_seq_len: 256, seed: 0}"),
    ("bench_data", "How does a 5x larger dataset change the time?", "words_4L_80P_1000.json",
     "{batch_size: [4, 8]}", "tiny_bs{batch_size}",
     "{epochs: 1, learning_rate: 1.0e-2, lora_rank: 8, packed: false, max_seq_len: 256, seed: 0}"),
    ("bench_packed", "How does packing change the time?", "words_5L_80P_200.json",
     "{batch_size: [2, 4]}", "tiny_packed_bs{batch_size}",
     "{epochs: 2, learning_rate: 1.0e-2, lora_rank: 8, packed: true, max_seq_len: 64, seed: 0}"),
)
SITE = """\
# The local site of the benchmark (--parallel jobs at a time).
executor: local
models_dir: .tunegit/models
output_dir: .tunegit/outputs
gpu: {{type: cpu, memory_gib: 0, count: 1}}
device: cpu
dtype: fp32
max_parallel: {parallel}
slurm: {{time_safety_factor: 2.0, min_time_minutes: 5}}
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO / "automation"), GIT_CONFIG_GLOBAL=os.devnull,
               GIT_CONFIG_NOSYSTEM="1", GIT_AUTHOR_NAME="bench",
               GIT_AUTHOR_EMAIL="bench@example.com",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.com")
    return env


def _tunegit(repo: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "tunegit", "-C", str(repo), *args], check=True,
                   env=_env(), stdout=subprocess.DEVNULL)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, env=_env(),
                   stdout=subprocess.DEVNULL)


def generate(names: list[str], parallel: int) -> None:
    """Run the bench plans (and the demo) for real; save their status records as fixtures."""
    with tempfile.TemporaryDirectory(prefix="tunegit-estimate-bench-") as tmp:
        repo = Path(tmp) / "repo"
        shutil.copytree(REPO / "tasks", repo / "tasks",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (repo / "sites").mkdir()
        (repo / "sites" / "local.yaml").write_text(SITE.format(parallel=parallel))
        (repo / ".gitignore").write_text(".tunegit/\n")
        plans = {p[0]: PLAN.format(name=p[0], question=p[1], dataset=p[2], factors=p[3],
                                   run_name=p[4], training=p[5]) for p in BENCH_PLANS}
        plans["demo_capitalization"] = (
            REPO / "experiments/demo_capitalization/experiment.yaml").read_text()
        chosen = [n for n in plans if not names or n in names]
        for name in chosen:
            (repo / "experiments" / name).mkdir(parents=True)
            (repo / "experiments" / name / "experiment.yaml").write_text(plans[name])
        _git(repo, "init", "-q", "-b", "main")
        _tunegit(repo, "check", "--write", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "bench plans")
        _tunegit(repo, "tiny-model")
        for name in chosen:
            t0 = time.monotonic()
            _tunegit(repo, "run", name, "--poll", "1")
            print(f"{name}: {time.monotonic() - t0:.0f} s", flush=True)
            dest = FIXTURES / name
            dest.mkdir(parents=True, exist_ok=True)
            (dest / "experiment.yaml").write_text(plans[name])
            status = (repo / "experiments" / name / "runs_status.yaml").read_text()
            (dest / "runs_status.yaml").write_text(status.replace(str(repo), SCRUB))


def history_repo(dest: Path) -> Path:
    """A workspace holding the fixture experiments (no git needed to read them)."""
    shutil.copytree(REPO / "tasks", dest / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "sites", dest / "sites")
    for exp in sorted(FIXTURES.iterdir()):
        if exp.is_dir():
            shutil.copytree(exp, dest / "experiments" / exp.name)
    return dest


def report() -> str:
    from tunegit.edges.calibration import held_out, held_out_summary
    from tunegit.edges.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="tunegit-estimate-loo-") as tmp:
        rows = held_out(Workspace(history_repo(Path(tmp))))
    lines = [f"| {'held-out run':<40} | actual min | history min | err | fallback min | err |",
             f"|{'-' * 42}|-----------:|------------:|----:|-------------:|----:|"]
    for r in rows:
        lines.append(f"| {r.source:<40} | {r.actual:10.2f} | {r.history:11.2f} | "
                     f"{r.history_ape:3.0%} | {r.fallback:12.2f} | {r.fallback_ape:3.0%} |")
    hist = statistics.median(r.history_ape for r in rows) if rows else float("nan")
    fall = statistics.median(r.fallback_ape for r in rows) if rows else float("nan")
    lines += ["", held_out_summary(rows),
              f"median |est-actual|/actual: history {hist:.3f}, fallback {fall:.3f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", action="store_true",
                        help="re-measure: run the tiny model for real and rewrite the fixtures")
    parser.add_argument("--only", nargs="*", default=[], help="with --generate: these plans only")
    parser.add_argument("--parallel", type=int, default=1,
                        help="with --generate: local jobs at a time (default 1: each run alone)")
    args = parser.parse_args(argv)
    if args.generate:
        t0 = time.monotonic()
        generate(args.only, args.parallel)
        print(f"generated in {time.monotonic() - t0:.0f} s on {platform.machine()}, "
              f"{os.cpu_count()} CPUs", flush=True)
    print(report())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
