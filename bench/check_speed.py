"""How long `tunegit check` takes, as a whole process, on a 1,000-run plan and the examples.

Builds a temporary experiments repository (sites/ and tasks/ copied from this checkout,
nothing written here), generates a plan whose factors lora_rank x learning_rate x seed
(10 x 10 x 10) make 1,000 runs on one model, renders it once with `check --write`, then
times, as separate processes (median of --repeat runs):

- `python -c "import yaml; yaml.safe_load(open(PLAN))"`: the floor (interpreter + YAML);
- `tunegit check EXP` on the 1,000-run plan (validate, expand, estimate, render, compare);
- `tunegit check EXP` on each example experiment of this repository.

    PYTHONPATH=automation python bench/check_speed.py [--repeat 7]

Results with the command and the machine are recorded in bench/CHECK_SPEED.md.
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
EXAMPLES = ("cap_8L_lora_comparison_2025-10-22", "cap_4L_lora_lr_sweep_2025-10-22",
            "demo_capitalization")
BIG = "big_sweep_1000"

BIG_PLAN = """\
name: {name}
question: How do rank, learning rate and seed interact (1,000 runs)?
site: della
models: [meta-llama/Llama-3.2-1B-Instruct]
dataset: {{path: tasks/capitalization/input/words_8L_80P_10000.json}}
factors:
  lora_rank: {ranks}
  learning_rate: {rates}
  seed: {seeds}
controls: true
run_name: "rank{{lora_rank}}_lr{{learning_rate}}_seed{{seed}}"
training: {{epochs: 2, batch_size: 8, packed: false, max_seq_len: 512}}
evaluation:
  epochs: all
  tasks:
    - {{name: capitalization_8L, script: tasks/capitalization/eval.py, dataset: training}}
"""


def big_plan() -> str:
    ranks = [2 ** i for i in range(1, 11)]
    rates = [f"{m}.0e-{e}" for e in (5, 4) for m in (1, 2, 3, 5, 8)]
    seeds = list(range(10))
    return BIG_PLAN.format(name=BIG, ranks=ranks, rates="[" + ", ".join(rates) + "]",
                           seeds=seeds)


def make_repo(root: Path) -> None:
    shutil.copytree(REPO / "sites", root / "sites")
    shutil.copytree(REPO / "tasks", root / "tasks")
    for name in EXAMPLES:
        (root / "experiments" / name).mkdir(parents=True)
        shutil.copy2(REPO / "experiments" / name / "experiment.yaml",
                     root / "experiments" / name / "experiment.yaml")
    (root / "experiments" / BIG).mkdir(parents=True)
    (root / "experiments" / BIG / "experiment.yaml").write_text(big_plan(), encoding="utf-8")


def timed(cmd: list[str], env: dict[str, str], repeat: int, ok: tuple[int, ...] = (0,)) -> float:
    """Median wall-clock seconds of `repeat` runs of cmd (after one warm-up run)."""
    samples = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode not in ok:
            sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
        if i:
            samples.append(elapsed)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO / "automation")}
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="tunegit-bench-") as tmp:
        root = Path(tmp)
        make_repo(root)
        tg = [py, "-m", "tunegit", "-C", str(root)]
        subprocess.run([*tg, "check", "--write", "-q"], env=env, check=True, capture_output=True)
        plan = root / "experiments" / BIG / "experiment.yaml"
        rows = [("python -c 'import yaml; yaml.safe_load(PLAN)' (floor, 1,000-run plan)",
                 timed([py, "-c", f"import yaml; yaml.safe_load(open({str(plan)!r}))"], env,
                       args.repeat))]
        rows.append((f"tunegit check {BIG} (1,000 runs + 1 control, 2,002 evaluations)",
                     timed([*tg, "check", "-q", f"experiments/{BIG}"], env, args.repeat)))
        for name in EXAMPLES:
            rows.append((f"tunegit check {name}",
                         timed([*tg, "check", "-q", f"experiments/{name}"], env, args.repeat)))
        rows.append(("tunegit check (whole repository: all of the above)",
                     timed([*tg, "check", "-q"], env, args.repeat)))
    print(f"# {platform.python_implementation()} {platform.python_version()} on "
          f"{platform.machine()}, {os.cpu_count()} CPUs; median of {args.repeat} runs")
    print("| command | median wall-clock |")
    print("|---|---|")
    for label, seconds in rows:
        print(f"| {label} | {seconds * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
