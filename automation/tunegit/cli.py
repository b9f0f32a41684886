"""Command line: builds the parser and calls one commands/<verb>.py function per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tunegit import __version__
from tunegit.errors import run_guarded

DESCRIPTION = """\
tunegit: GitOps for LLM fine-tuning experiments.

An experiment is a YAML plan in experiments/NAME/experiment.yaml. `tunegit check`
validates it, estimates time, GPU-hours, batch size and disk, and renders
runs_plan.md; `tunegit run` executes it (torchtune then inspect-ai) on the plan's
site, recording every transition in runs_status.yaml.
"""


def _add_common_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment name, its directory, or its experiment.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunegit", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tunegit {__version__}")
    parser.add_argument("-C", dest="root", metavar="DIR",
                        help="run as if started in DIR (the experiments repository)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("new", help="write a commented skeleton plan experiments/NAME/experiment.yaml")
    p.add_argument("name", help="experiment name, e.g. cap_8L_lora_comparison_2025-10-22")
    p.add_argument("--site", default="local", help="site the plan runs on (default: local)")

    p = sub.add_parser("check", help="validate, estimate and render runs_plan.md (pre-commit, CI)",
                       description="Validate plans, estimate their cost and check that the "
                       "committed runs_plan.md and runs_status.yaml are up to date. Without "
                       "--write a stale or missing rendering fails with the command that fixes it.")
    p.add_argument("paths", nargs="*", help="experiment dirs, plan files, or the repository "
                   "(default: every experiment)")
    p.add_argument("--write", action="store_true",
                   help="update runs_plan.md, runs_status.yaml and design-experiment.log")
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")

    p = sub.add_parser("estimate", help="time, GPU-hours, batch size and disk per run and in total")
    _add_common_plan_args(p)
    p.add_argument("--json", action="store_true", help="stable machine-readable output")

    p = sub.add_parser("schema", help="print the JSON Schema of experiment.yaml or of a site file")
    p.add_argument("which", nargs="?", choices=("plan", "site"), default="plan")

    p = sub.add_parser("scaffold", help="render torchtune, inspect-ai and SLURM files for every run")
    _add_common_plan_args(p)
    p.add_argument("--site", help="override the plan's site")
    p.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    p.add_argument("--force", action="store_true", help="overwrite hand-edited generated files")

    p = sub.add_parser("run", help="scaffold, submit and wait: the whole experiment on its site")
    _add_common_plan_args(p)
    p.add_argument("--site", help="override the plan's site")
    p.add_argument("--poll", type=float, default=None, metavar="SECONDS",
                   help="seconds between status checks (default: site's, 2 s locally)")
    p.add_argument("--no-wait", action="store_true", help="submit what is ready and return")

    p = sub.add_parser("tiny-model", help="create the tiny Llama used by the demo (no model hub)")
    p.add_argument("--site", default="local", help="put it in this site's models_dir")
    p.add_argument("--dest", help="directory to create (default: <models_dir>/tiny-llama)")

    p = sub.add_parser("results", help="scores per run x task x epoch (markdown, CSV, PNG plot)")
    _add_common_plan_args(p)
    p.add_argument("--format", choices=("markdown", "csv"), default="markdown")

    p = sub.add_parser("calibrate", help="how far past estimates were from what runs measured",
                       description="For every completed run recorded in experiments/*/"
                       "runs_status.yaml, compare the planned training time with the measured "
                       "one: median and worst absolute percentage error per model and GPU type.")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("status", help="table of runs and evaluations from runs_status.yaml")
    p.add_argument("experiment", nargs="?", help="one experiment (default: all)")
    return parser


COMMANDS = {
    "new": "tunegit.commands.new",
    "check": "tunegit.commands.check",
    "estimate": "tunegit.commands.estimate",
    "schema": "tunegit.commands.schema",
    "scaffold": "tunegit.commands.scaffold",
    "run": "tunegit.commands.run",
    "tiny-model": "tunegit.commands.tiny_model",
    "results": "tunegit.commands.results",
    "status": "tunegit.commands.status",
    "calibrate": "tunegit.commands.calibrate",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    module = importlib.import_module(COMMANDS[args.command])
    return run_guarded(lambda: int(module.main(args)))


def main_entry() -> None:
    sys.exit(main())
