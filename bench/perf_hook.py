"""Hook latency at lab scale: `tunegit check` on one changed experiment, against the floor.

Builds (in a temp dir) a repository of --experiments plans x --runs runs (default 500 x 40 =
20,000 runs, 80 % of them completed with recorded metrics, as perf_lab.make_lab), plus a
1,000-run plan, and times as whole processes, interleaved, median of --repeat:

- floor: `python -c "import yaml; yaml.load(open(PLAN), CSafeLoader)"` on the changed plan;
- `tunegit check -q experiments/X/experiment.yaml` (what pre-commit runs for one staged
  file) in the lab repository, and the same plan alone in a one-experiment repository;
- the 1,000-run plan (bench/check_speed.py's) in the lab repository;
- the lab check with the priors index (.git/tunegit-priors.json) removed first: a fresh
  clone or a CI job without a cache;
- the lab check after touching every runs_status.yaml: new stat keys, same bytes (a fresh
  clone given a cached index, as the plan workflow does).

and, in-process with an audit hook, how many files the lab check opens (and how many of
them are other experiments' runs_status.yaml).

    PYTHONPATH=automation python bench/perf_hook.py [--experiments 500] [--runs 40] [--repeat 5]

Figures are recorded in bench/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_speed import BIG, big_plan
from perf_lab import alternate, archive, exp_name, git, git_env, machine, make_lab

from tunegit.edges.priors import INDEX_FILE

COUNT_OPENS = """\
import sys, json
opened = []
sys.addaudithook(lambda ev, args: opened.append(str(args[0])) if ev == 'open' else None)
from tunegit.cli import main
rc = main(sys.argv[1:])
status = [p for p in opened if p.endswith('runs_status.yaml')]
print(json.dumps({'rc': rc, 'opens': len(opened), 'status_opens': len(status)}))
"""


def opens(py: str, env: dict[str, str], root: Path, *args: str) -> dict[str, int]:
    proc = subprocess.run([py, "-c", COUNT_OPENS, "-C", str(root), *args], env=env,
                          capture_output=True, text=True, check=True)
    result: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiments", type=int, default=500)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", metavar="REV",
                        help="also time the lab and 1,000-run checks as of this revision of "
                        "automation/ (git archive), interleaved with the working tree's")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="tunegit-perf-hook-") as tmp:
        base = Path(tmp)
        lab, solo = base / "lab", base / "solo"
        env = git_env(base / "home")
        lab.mkdir()
        names = make_lab(lab, args.experiments, args.runs)
        changed = names[-1]  # a pending experiment: the one a commit changes
        big_dir = lab / "experiments" / BIG
        big_dir.mkdir()
        (big_dir / "experiment.yaml").write_text(big_plan(), encoding="utf-8")
        git(lab, env, "init", "-q")
        tg = [py, "-m", "tunegit", "-C", str(lab)]
        subprocess.run([*tg, "check", "--write", "-q", f"experiments/{changed}",
                        f"experiments/{BIG}"], env=env, check=True, capture_output=True)
        solo.mkdir()
        for sub in ("sites", "tasks"):
            shutil.copytree(lab / sub, solo / sub)
        shutil.copytree(lab / "experiments" / changed, solo / "experiments" / changed)
        git(solo, env, "init", "-q")
        subprocess.run([py, "-m", "tunegit", "-C", str(solo), "check", "--write", "-q",
                        f"experiments/{changed}"], env=env, check=True, capture_output=True)
        plan = lab / "experiments" / changed / "experiment.yaml"
        rel = f"experiments/{changed}/experiment.yaml"
        commands = {
            "floor": [py, "-c",
                      f"import yaml; yaml.load(open({str(plan)!r}), Loader=yaml.CSafeLoader)"],
            "python -c pass": [py, "-c", "pass"],
            "libs": [py, "-c", "import yaml, jinja2, pydantic"],
            "cold": ["sh", "-c", f"rm -f {lab}/.git/{INDEX_FILE}; exec \"$@\"", "-", *tg,
                     "check", "-q", rel],
            # an hour ago (a new stat key each run, outside the index's racy window)
            "restored": ["sh", "-c", f"touch -d @$(($(date +%s) - 3600)) "
                         f"{lab}/experiments/*/runs_status.yaml; exec \"$@\"",
                         "-", *tg, "check", "-q", rel],
            "lab": [*tg, "check", "-q", rel],
            "solo": [py, "-m", "tunegit", "-C", str(solo), "check", "-q", rel],
            "big": [*tg, "check", "-q", f"experiments/{BIG}/experiment.yaml"],
        }
        if args.baseline:  # on a copy: the two versions' priors indexes must not meet
            old = archive(args.baseline, base / "baseline")
            copy = base / "lab-baseline"
            shutil.copytree(lab, copy, symlinks=True)
            old_tg = ["env", f"PYTHONPATH={old}", py, "-m", "tunegit", "-C", str(copy)]
            # Its own rendering of the timed plans: runs_plan.md's text may differ by version.
            for plan in (rel, f"experiments/{BIG}/experiment.yaml"):
                subprocess.run([*old_tg, "check", "--write", "-q", plan], env=env,
                               capture_output=True, check=False)
            commands["lab-base"] = [*old_tg, "check", "-q", rel]
            commands["big-base"] = [*old_tg, "check", "-q", f"experiments/{BIG}/experiment.yaml"]
        medians = alternate(commands, env, args.repeat)
        subprocess.run([*tg, "check", "-q", rel], env=env, capture_output=True, check=False)
        counted = opens(py, env, lab, "check", "-q", rel)  # the index is warm (row "lab")
        runs_total = args.experiments * args.runs
    floor = medians["floor"]
    print(f"# {machine()}; {args.experiments} experiments x {args.runs} runs = {runs_total:,} "
          f"runs (+ a 1,000-run plan); median of {args.repeat}, interleaved")
    print("| command | median | x floor |")
    print("|---|---|---|")
    labels = {
        "floor": f"floor: python -c 'import yaml; yaml.load(PLAN, CSafeLoader)' ({exp_name(0)}"
                 "-sized plan)",
        "python -c pass": "python -c pass (interpreter start alone)",
        "libs": "python -c 'import yaml, jinja2, pydantic' (the design's libraries alone)",
        "cold": f"tunegit check -q {rel} (lab repo, {args.experiments} experiments, no priors "
                "index: a fresh clone, CI)",
        "restored": f"tunegit check -q {rel} (lab repo, every status file's stat changed, "
                    "bytes not: a fresh clone given a cached index, CI)",
        "lab": f"tunegit check -q {rel} (lab repo, {args.experiments} experiments)",
        "solo": f"tunegit check -q {rel} (the same plan alone in a repo)",
        "big": f"tunegit check -q experiments/{BIG} (1,000 runs, in the lab repo)",
        "lab-base": f"the lab check as of {args.baseline}",
        "big-base": f"the 1,000-run check as of {args.baseline}",
    }
    for key, label in labels.items():
        if key not in medians:
            continue
        print(f"| {label} | {medians[key] * 1000:.0f} ms | {medians[key] / floor:.1f} |")
    print(f"\nfiles opened by the lab check (audit hook): {counted['opens']}, of which "
          f"runs_status.yaml: {counted['status_opens']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
