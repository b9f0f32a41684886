"""Command line: builds the parser and calls one commands/<verb>.py function per subcommand."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from tunegit import __version__
from tunegit.errors import run_guarded
from tunegit.version import DEFAULT_URL

DESCRIPTION = """\
tunegit: GitOps for LLM fine-tuning experiments.

An experiment is a YAML plan in experiments/NAME/experiment.yaml. `tunegit check`
validates it, estimates time, GPU-hours, batch size and disk, and renders
runs_plan.md; `tunegit run` executes it (torchtune then inspect-ai) on the plan's
site, recording every transition in runs_status.yaml.
"""


def _add_common_plan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment name, its directory, or its experiment.yaml")


def _add_watch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--branch", default="main", help="the protected branch to follow (default: main)"
    )
    p.add_argument(
        "--remote", default="origin", help="the remote to fetch and push (default: origin)"
    )
    p.add_argument(
        "--push-attempts",
        type=int,
        default=5,
        metavar="N",
        help="push tries per cycle, with back-off, before keeping the commit local",
    )
    p.add_argument(
        "--lease-minutes",
        type=float,
        default=20.0,
        metavar="M",
        help="one watcher acts per origin branch: it holds a lease (refs/tunegit/lease/BRANCH "
        "on the origin), renewed each cycle; another watcher stands by and takes over when the "
        "lease is not renewed for M minutes (default 20; 0 turns the lease off)",
    )
    p.add_argument(
        "--site",
        dest="sites",
        action="append",
        default=[],
        metavar="NAME",
        help="serve only plans for this site (repeatable); plans for other sites are left "
        "alone (default: every site)",
    )


def _add_diff(sub: Any) -> None:
    p = sub.add_parser(
        "diff",
        help="plan diff between two revisions: runs, evaluations, GPU-hours (PR comment)",
        description="Compare the plans of two git revisions: experiments and runs added, removed "
        "or changed, evaluations, and the GPU-hour, time and disk delta. Prints nothing when no "
        "plan changed. Fails when a run that was already submitted changed.",
    )
    p.add_argument("base", help="base revision, e.g. origin/main or the PR's base sha")
    p.add_argument("head", nargs="?", help="head revision (default: the working tree)")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown")


def _add_reconcile(sub: Any) -> None:
    p = sub.add_parser(
        "reconcile",
        help="one watcher cycle: pull the protected branch, run, commit status, push",
        description="Fetch and fast-forward the protected branch, reconcile experiments that "
        "changed or have live jobs, commit runs_status.yaml changes in one commit and push. "
        "Meant for cron or scrontab: a second copy running on the same checkout exits at once.",
    )
    p.add_argument("--once", action="store_true", help="one cycle, then exit (the only mode)")
    _add_watch_args(p)


def _add_watch(sub: Any) -> None:
    p = sub.add_parser(
        "watch",
        help="the watcher daemon: reconcile on a timer, at once when woken",
        description="Run `tunegit reconcile --once` every --interval seconds, and at once "
        "when .git/tunegit-wake in the checkout is touched (by a post-receive hook or a "
        "webhook receiver, when the protected branch moves) or a local job ends. SIGTERM or "
        "Ctrl-C finish the current cycle and exit 0.",
    )
    _add_watch_args(p)
    p.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds between cycles when nothing changes (default: 60)",
    )
    p.add_argument(
        "--min-gap",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="at least this long between two cycles (default: 5)",
    )


def _add_history(sub: Any) -> None:
    p = sub.add_parser(
        "history",
        help="timeline of an experiment or run from git log (the audit trail)",
        description="Read git log of experiments/EXP/runs_status.yaml and experiment.yaml: who "
        "planned each run in which commit, and every state the watcher recorded, with job ids.",
    )
    p.add_argument("target", metavar="EXP[/RUN]", help="an experiment, or one of its runs")


def _add_guard_status(sub: Any) -> None:
    p = sub.add_parser(
        "guard-status",
        help="refuse hand edits to runs_status.yaml (pre-commit hook, CI)",
        description="Fail when a runs_status.yaml changes in a way only tunegit may change it. "
        "With FILES (pre-commit) the staged content is checked unless TUNEGIT_COMMITTER=1; "
        "with --base REV every human commit in REV..HEAD is checked.",
    )
    p.add_argument("files", nargs="*", help="staged files (pre-commit passes them)")
    p.add_argument("--base", metavar="REV", help="check the commits REV..HEAD instead (CI)")


def _add_init(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="make a lab's own experiments repository: sites, hooks, CI, an example task",
        description="Write what a new experiments repository needs for its first commit: "
        "sites/local.yaml and a SLURM site to fill in, .gitignore, a .pre-commit-config.yaml "
        "and CI workflow pinning tunegit's hooks and checks at this version's tag, the "
        "example capitalization task and a README. Each file is reported as create, "
        "identical, update or conflict; files changed by hand are left alone.",
    )
    p.add_argument("dir", nargs="?", default=".", help="the repository (default: here); "
                   "created if missing")
    p.add_argument("--tunegit-url", default=DEFAULT_URL, metavar="URL",
                   help=f"tunegit's git repository, for the hooks and CI (default: {DEFAULT_URL})")
    p.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    p.add_argument("--force", action="store_true", help="overwrite files changed by hand")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunegit",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tunegit {__version__}")
    parser.add_argument(
        "-C",
        dest="root",
        metavar="DIR",
        help="run as if started in DIR (the experiments repository)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_init(sub)
    p = sub.add_parser(
        "new", help="write a commented skeleton plan experiments/NAME/experiment.yaml"
    )
    p.add_argument("name", help="experiment name, e.g. cap_8L_lora_comparison_2025-10-22")
    p.add_argument("--site", default="local", help="site the plan runs on (default: local)")

    p = sub.add_parser(
        "check",
        help="validate, estimate and render runs_plan.md (pre-commit, CI)",
        description="Validate plans, estimate their cost and check that the "
        "committed runs_plan.md and runs_status.yaml are up to date. Without "
        "--write a stale or missing rendering fails with the command that fixes it.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        help="experiment dirs, plan files, or the repository (default: every experiment)",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="update runs_plan.md, runs_status.yaml and design-experiment.log",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    p.add_argument(
        "--base",
        metavar="REV",
        help="also refuse changes to runs already submitted at REV (CI: the PR's base)",
    )

    p = sub.add_parser("estimate", help="time, GPU-hours, batch size and disk per run and in total")
    _add_common_plan_args(p)
    p.add_argument("--json", action="store_true", help="stable machine-readable output")

    p = sub.add_parser("schema", help="print the JSON Schema of experiment.yaml, a site file or "
                       "retry.yaml")
    p.add_argument("which", nargs="?", choices=("plan", "site", "retry"), default="plan")

    p = sub.add_parser(
        "scaffold", help="render torchtune, inspect-ai and SLURM files for every run"
    )
    _add_common_plan_args(p)
    p.add_argument("--site", help="override the plan's site")
    p.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
    p.add_argument("--force", action="store_true", help="overwrite hand-edited generated files")

    p = sub.add_parser("run", help="scaffold, submit and wait: the whole experiment on its site")
    _add_common_plan_args(p)
    p.add_argument("--site", help="override the plan's site")
    p.add_argument(
        "--poll",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between status checks (default: site's, 2 s locally)",
    )
    p.add_argument("--no-wait", action="store_true", help="submit what is ready and return")

    p = sub.add_parser(
        "dataset",
        help="make a dataset for the example task (words_<L>L_80P_<N>.json)",
        description="Write tasks/capitalization/input/words_<L>L_80P_<N>.json: N distinct "
        "pronounceable words of L letters, split 80/10/10 into train, validation and test, "
        "each {\"input\": word, \"output\": Word}. The same numbers and seed give the same "
        "file.",
    )
    p.add_argument("kind", choices=("capitalization",), help="which dataset")
    p.add_argument("--letters", type=int, required=True, metavar="L", help="letters per word")
    p.add_argument("--words", type=int, required=True, metavar="N", help="how many words")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--out-dir", metavar="DIR",
                   help="directory to write into (default: tasks/capitalization/input)")

    p = sub.add_parser("tiny-model", help="create the tiny Llama used by the demo (no model hub)")
    p.add_argument("--site", default="local", help="put it in this site's models_dir")
    p.add_argument("--dest", help="directory to create (default: <models_dir>/tiny-llama)")
    p.add_argument("--pretrain-steps", type=int, default=None, metavar="N",
                   help="steps of pretraining to copy words (default: about a minute on two CPU "
                   "cores; 0 leaves the weights random, enough for tests of mechanics)")

    p = sub.add_parser(
        "results",
        help="scores with 95%% intervals and the difference from base; loss curves",
        description="Write results.md, results.csv and results.png (one cell per run x task x "
        "epoch x scorer: score, n, 95%% interval, and for a fine-tuned run the paired "
        "difference from its model's base control) and loss.png (training loss per step and "
        "per epoch) next to the plan, from the eval and training logs runs_status.yaml "
        "points at; where a log is not on this machine, from what runs_status.yaml recorded.",
    )
    _add_common_plan_args(p)
    p.add_argument("--format", choices=("markdown", "csv"), default="markdown",
                   help="what to print (all the files are written)")

    p = sub.add_parser(
        "report",
        help="one self-contained HTML page: plan, estimates, status, results, plots",
        description="Write experiments/EXP/report.html: the plan (question, factors, runs), "
        "estimates against measured times, every step's status with job id and reason, the "
        "results with their intervals and the plots, embedded in the page (open it in any "
        "browser, or send it: it needs no other file).",
    )
    _add_common_plan_args(p)

    p = sub.add_parser(
        "retry",
        help="ask for a new attempt of a failed, cancelled or blocked step (retry.yaml)",
        description="Add a request to experiments/EXP/retry.yaml, to commit and merge through "
        "a pull request. After the merge the watcher applies it once: the step's last attempt "
        "goes to `attempts` and the step becomes pending as attempt N+1, under a new job name "
        "(`...a<N>`), with who asked and why. Without a watcher, `tunegit run EXP` applies "
        "it. Submitted attempts are never edited in place.",
    )
    _add_common_plan_args(p)
    p.add_argument("run", help="run name, as in runs_status.yaml")
    p.add_argument(
        "key", nargs="?", default=None, help="evaluation key (default: the fine-tuning step)"
    )
    p.add_argument("--reason", help="why a new attempt, for the reviewer and the history "
                   "(default: how the last attempt ended)")

    p = sub.add_parser(
        "cancel",
        help="cancel an experiment's (or one run's) jobs",
        description="Cancel the live jobs of an experiment (or one run) through its site's "
        "executor (scancel on SLURM) and record them as cancelled; pending steps are "
        "cancelled too, so nothing new is submitted for them.",
    )
    _add_common_plan_args(p)
    p.add_argument("run", nargs="?", default=None, help="only this run (default: all runs)")
    p.add_argument("--site", help="the site the jobs were submitted to (default: the plan's)")

    p = sub.add_parser(
        "calibrate",
        help="how far past estimates were from what runs measured",
        description="For every completed run recorded in experiments/*/"
        "runs_status.yaml, compare the planned training time with the measured "
        "one: median and worst absolute percentage error per model and GPU type.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")

    for add in (_add_diff, _add_reconcile, _add_watch, _add_history, _add_guard_status):
        add(sub)

    p = sub.add_parser("status", help="table of runs and evaluations from runs_status.yaml")
    p.add_argument("experiment", nargs="?", help="one experiment (default: all)")

    p = sub.add_parser(
        "logs",
        help="the tail of one step's log (why it failed)",
        description="Print the last lines of the log a fine-tuning or evaluation job wrote, "
        "the file runs_status.yaml records for the step, under a header naming it.",
    )
    p.add_argument("target", metavar="EXP/RUN[/EVAL]",
                   help="a run's fine-tuning (EXP/RUN or EXP/RUN/finetune) or one of its "
                   "evaluations (EXP/RUN/KEY, as in `tunegit status`)")
    p.add_argument("-n", "--lines", type=int, default=None, metavar="LINES",
                   help="how many lines from the end (default: 40)")
    return parser


COMMANDS = {
    "init": "tunegit.commands.init",
    "new": "tunegit.commands.new",
    "check": "tunegit.commands.check",
    "estimate": "tunegit.commands.estimate",
    "schema": "tunegit.commands.schema",
    "scaffold": "tunegit.commands.scaffold",
    "run": "tunegit.commands.run",
    "dataset": "tunegit.commands.dataset",
    "tiny-model": "tunegit.commands.tiny_model",
    "results": "tunegit.commands.results",
    "report": "tunegit.commands.report",
    "status": "tunegit.commands.status",
    "logs": "tunegit.commands.logs",
    "calibrate": "tunegit.commands.calibrate",
    "retry": "tunegit.commands.retry",
    "cancel": "tunegit.commands.cancel",
    "diff": "tunegit.commands.diff",
    "reconcile": "tunegit.commands.reconcile",
    "watch": "tunegit.commands.watch",
    "history": "tunegit.commands.history",
    "guard-status": "tunegit.commands.guard_status",
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
