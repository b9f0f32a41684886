"""A semantic plan diff between two revisions: runs, evaluations and cost, as a PR comment.

Each revision is exported (`git archive`) into a temporary tree and analysed
there exactly like `tunegit check` would; the working tree stands for HEAD when
no head revision is given. Comparing the two is pure (``diff_snapshots``) and so
is formatting (``markdown``, ``as_json``).

What a reviewer reads, per experiment: the plan-wide changes first (factor levels,
settings: `factor lora_rank: [8, 16] → [8, 16, 32]`), new retry requests, then the runs
and evaluations added, removed or changed, and the cost, marked when its estimates are
preliminary (no completed runs or calibration like them yet).

Submitted runs are immutable: changing a run whose fine-tuning or evaluation
already left `pending` on either side is refused; the way out is a new run name. A
base-model control is compared only on what its evaluation reads (``Run.settings``).
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tunegit.core import status as status_mod
from tunegit.core.expand import Run
from tunegit.core.states import PENDING, SKIPPED
from tunegit.edges import retry_requests
from tunegit.edges.analysis import analyse
from tunegit.edges.calibration import accuracy_sentence, load_pairs, summarise
from tunegit.edges.workspace import PLAN_FILE, STATUS_FILE, Workspace
from tunegit.errors import PlanError, Problem, TunegitError
from tunegit.files import read_status
from tunegit.spec.loader import Located
from tunegit.spec.plan import Plan
from tunegit.spec.retry import RETRY_FILE

MARKER = "<!-- tunegit-plan-diff -->"
PRELIMINARY = ("**preliminary**: no completed runs or calibration like these yet, the figures "
               "come from the fallback table")
# Where a Run field is written in experiment.yaml, most specific first (for file:line).
FIELD_PATHS: Mapping[str, tuple[tuple[str, ...], ...]] = {
    "model": (("factors", "model"), ("models",)),
    "model_id": (("models",),),
    "dataset": (("factors", "dataset"), ("dataset", "path")),
}


@dataclasses.dataclass(frozen=True)
class Cost:
    gpu_hours: float = 0.0
    minutes: float = 0.0  # sequential: training + evaluation
    disk_gib: float = 0.0

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.gpu_hours - other.gpu_hours, self.minutes - other.minutes,
                    self.disk_gib - other.disk_gib)

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.gpu_hours + other.gpu_hours, self.minutes + other.minutes,
                    self.disk_gib + other.disk_gib)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """One experiment at one revision, as analysed there."""

    name: str
    plan_file: str
    runs: Mapping[str, Run]
    evaluations: frozenset[str]  # "run/key"
    cost: Cost
    submitted: Mapping[str, str]  # run -> "finetune: completed (job 12)" for runs past pending
    source: str  # plan text + site text: equal sources mean nothing to compare
    located: Located | None = None
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # plan_settings
    preliminary: bool = False  # some estimate is from the fallback table (no history yet)
    retries: Mapping[str, str] = dataclasses.field(default_factory=dict)  # retry.yaml: id -> text


@dataclasses.dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclasses.dataclass(frozen=True)
class RunChange:
    run: str
    changes: tuple[FieldChange, ...]
    submitted: str = ""  # non-empty: the run was already submitted (immutable)


@dataclasses.dataclass(frozen=True)
class ExperimentDiff:
    name: str
    kind: str  # added | removed | changed
    plan_file: str
    runs_added: tuple[str, ...] = ()
    runs_removed: tuple[str, ...] = ()
    runs_changed: tuple[RunChange, ...] = ()
    evaluations_added: tuple[str, ...] = ()
    evaluations_removed: tuple[str, ...] = ()
    base: Cost = Cost()
    head: Cost = Cost()
    plan_changes: tuple[FieldChange, ...] = ()  # factor levels and settings, plan-wide
    preliminary: bool = False  # the head's estimates are (partly) preliminary
    retries_added: tuple[str, ...] = ()  # new retry.yaml requests, as text

    @property
    def delta(self) -> Cost:
        return self.head - self.base

    @property
    def violations(self) -> tuple[RunChange, ...]:
        return tuple(c for c in self.runs_changed if c.submitted)


@dataclasses.dataclass(frozen=True)
class PlanDiff:
    base: str
    head: str
    experiments: tuple[ExperimentDiff, ...]
    problems: tuple[Problem, ...] = ()  # immutability violations, located in the head plan
    accuracy: str = ""  # how accurate estimates have been on this repository's history

    @property
    def empty(self) -> bool:
        return not self.experiments

    @property
    def delta(self) -> Cost:
        return sum((e.delta for e in self.experiments), Cost())


# --- pure: comparing snapshots ---------------------------------------------------------------

# Plan keys that change no run, estimate or job: not shown as setting changes.
DESCRIPTIVE_KEYS = frozenset({"name", "type", "question", "notes", "author"})
# Plan sections shown one key a line (`factors.lora_rank`, `training.learning_rate`).
SECTIONS = ("factors", "training", "dataset", "tools", "evaluation")


def plan_settings(plan: Plan) -> dict[str, Any]:
    """The plan's settings as flat keys: `factors.lora_rank: [8, 16]`, `training.seed: 42`;
    evaluation tasks by name (`evaluation.tasks.capitalization_8L: {...}`)."""
    out: dict[str, Any] = {}
    for key, value in plan.model_dump(mode="json").items():
        if key in DESCRIPTIVE_KEYS:
            continue
        if key not in SECTIONS:
            out[key] = value
            continue
        for sub, v in value.items():
            if (key, sub) == ("evaluation", "tasks"):
                out.update({f"evaluation.tasks.{t['name']}": t for t in v})
            else:
                out[f"{key}.{sub}"] = v
    return out


def settings_changes(before: Mapping[str, Any], after: Mapping[str, Any],
                     ) -> tuple[FieldChange, ...]:
    return tuple(FieldChange(k, before.get(k), after.get(k))
                 for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k))


def run_changes(old: Run, new: Run) -> tuple[FieldChange, ...]:
    changes = list(settings_changes(old.settings(), new.settings()))
    if len(changes) > 1:  # `factors` repeats the levels of the other fields: show it alone only
        changes = [c for c in changes if c.field != "factors"]
    return tuple(changes)


def diff_experiment(base: Snapshot | None, head: Snapshot | None) -> ExperimentDiff | None:
    if base is None and head is None:
        return None
    if base is not None and head is not None and base.source == head.source:
        return None
    b_runs = base.runs if base else {}
    h_runs = head.runs if head else {}
    b_evals = base.evaluations if base else frozenset()
    h_evals = head.evaluations if head else frozenset()
    submitted = {**(base.submitted if base else {}), **(head.submitted if head else {})}
    changed = []
    for name in (n for n in h_runs if n in b_runs):
        fields = run_changes(b_runs[name], h_runs[name])
        if fields:
            changed.append(RunChange(name, fields, submitted.get(name, "")))
    some = head or base
    assert some is not None
    kind = "added" if base is None else "removed" if head is None else "changed"
    result = ExperimentDiff(
        some.name, kind, some.plan_file,
        tuple(n for n in h_runs if n not in b_runs), tuple(n for n in b_runs if n not in h_runs),
        tuple(changed), tuple(sorted(h_evals - b_evals)), tuple(sorted(b_evals - h_evals)),
        base.cost if base else Cost(), head.cost if head else Cost(),
        settings_changes(base.settings, head.settings) if base and head else (),
        bool(head and head.preliminary),
        tuple(text for i, text in (head.retries if head else {}).items()
              if i not in (base.retries if base else {})))
    quiet = not (result.plan_changes or result.retries_added or result.runs_added
                 or result.runs_removed or result.runs_changed or result.evaluations_added
                 or result.evaluations_removed)
    return None if quiet and kind == "changed" and result.delta == Cost() else result


def diff_snapshots(base: Mapping[str, Snapshot], head: Mapping[str, Snapshot],
                   ) -> tuple[ExperimentDiff, ...]:
    names = sorted(set(base) | set(head))
    diffs = (diff_experiment(base.get(n), head.get(n)) for n in names)
    return tuple(d for d in diffs if d is not None)


def violation_problem(exp: ExperimentDiff, change: RunChange, located: Located | None) -> Problem:
    fields = ", ".join(f"{c.field} ({_value(c.old)} -> {_value(c.new)})" for c in change.changes)
    message = (f"run {change.run!r} was already submitted ({change.submitted}); "
               f"submitted runs are immutable, but {fields} changed")
    hint = ("give the changed run a new name (edit `run_name` or a factor level) so it runs "
            "again as a new run, or revert the change")
    first = change.changes[0].field
    if located is not None:
        for path in FIELD_PATHS.get(first, (("factors", first), ("training", first))):
            if path in located.key_positions or path in located.positions:
                line, col = located.where(path)
                return Problem(exp.plan_file, message, line, col, ".".join(path), hint)
    return Problem(exp.plan_file, message, field=f"runs.{change.run}.{first}", hint=hint)


def submitted_runs(status: status_mod.StatusFile | None) -> dict[str, str]:
    """Runs with a step that left `pending` (fine-tuning or any evaluation), and where it is."""
    out: dict[str, str] = {}
    for run, key, step in (status.steps() if status else []):
        if step.status in (PENDING, SKIPPED) or run in out:
            continue
        job = f" job {step.job_id}" if step.job_id else ""
        out[run] = f"{'finetune' if key is None else key}: {step.status}{job}".strip()
    return out


# --- pure: formatting ------------------------------------------------------------------------

def _value(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def _short(rev: str) -> str:
    is_sha = len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)
    return rev[:10] if is_sha else rev


def _signed(x: float, fmt: str = ".2f") -> str:
    return f"{x:+{fmt}}" if round(x, 2) != 0 else f"{0:{fmt}}"


def duration(minutes: float) -> str:
    sign = "-" if minutes < 0 else ""
    m = round(abs(minutes))
    return f"{sign}{m // 60}h {m % 60:02d}m" if m >= 60 else f"{sign}{m}m"


def _signed_duration(minutes: float) -> str:
    text = duration(minutes)
    return text if text.startswith("-") or round(minutes) == 0 else "+" + text


def _count(added: int, removed: int) -> str:
    parts = ([f"+{added}"] if added else []) + ([f"-{removed}"] if removed else [])
    return " ".join(parts) or "0"


def _code(items: tuple[str, ...]) -> str:
    return ", ".join(f"`{i}`" for i in items)


def _plan_change(c: FieldChange) -> str:
    section, _, key = c.field.partition(".")
    old = "(not set)" if c.old is None else _value(c.old)
    new = "(not set)" if c.new is None else _value(c.new)
    what = f"factor `{key}`" if section == "factors" else f"setting `{c.field}`"
    return f"- {what}: {old} → {new}"


def _experiment_section(e: ExperimentDiff) -> list[str]:
    lines = [f"### `{e.name}` ({e.kind})", ""]
    lines += [_plan_change(c) for c in e.plan_changes]
    lines += [f"- new attempt requested: {r}" for r in e.retries_added]
    if e.runs_added:
        lines.append(f"- runs added: {_code(e.runs_added)}")
    if e.runs_removed:
        lines.append(f"- runs removed: {_code(e.runs_removed)} (their status records are kept)")
    for c in e.runs_changed:
        fields = "; ".join(f"`{f.field}` {_value(f.old)} → {_value(f.new)}" for f in c.changes)
        flag = f" — **refused: already submitted ({c.submitted})**" if c.submitted else ""
        lines.append(f"- run `{c.run}` changed: {fields}{flag}")
    if e.evaluations_added:
        lines.append(f"- evaluations added: {_code(e.evaluations_added)}")
    if e.evaluations_removed:
        lines.append(f"- evaluations removed: {_code(e.evaluations_removed)}")
    b, h = e.base, e.head
    lines.append(f"- cost: {b.gpu_hours:.2f} → {h.gpu_hours:.2f} GPU-h, "
                 f"{duration(b.minutes)} → {duration(h.minutes)}, "
                 f"{b.disk_gib:.1f} → {h.disk_gib:.1f} GiB"
                 + (f" ({PRELIMINARY})" if e.preliminary else ""))
    return [*lines, ""]


def markdown(diff: PlanDiff) -> str:
    """The PR comment; empty when nothing in any plan changed."""
    if diff.empty:
        return ""
    d = diff.delta
    n = len(diff.experiments)
    lines = [MARKER, "## tunegit plan diff", "",
             f"`{_short(diff.base)}` → `{_short(diff.head)}`: "
             f"{n} experiment{'s' * (n != 1)} changed, "
             f"**{_signed(d.gpu_hours)} GPU-h**, {_signed_duration(d.minutes)} sequential, "
             f"{_signed(d.disk_gib, '.1f')} GiB disk", ""]
    if diff.accuracy:
        lines += [diff.accuracy, ""]
    if diff.problems:
        lines += ["**Refused:** submitted runs are immutable.", "", "```"]
        lines += [p.format() for p in diff.problems] + ["```", ""]
    lines += ["| experiment | change | runs | evaluations | GPU-h | time | disk |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for e in diff.experiments:
        runs = _count(len(e.runs_added), len(e.runs_removed))
        if e.runs_changed:
            runs += f" ~{len(e.runs_changed)}"
        mark = " (preliminary)" if e.preliminary else ""
        lines.append(f"| `{e.name}` | {e.kind} | {runs} | "
                     f"{_count(len(e.evaluations_added), len(e.evaluations_removed))} | "
                     f"{_signed(e.delta.gpu_hours)}{mark} | {_signed_duration(e.delta.minutes)} | "
                     f"{_signed(e.delta.disk_gib, '.1f')} GiB |")
    lines.append("")
    for e in diff.experiments:
        lines += _experiment_section(e)
    return "\n".join(lines).rstrip("\n") + "\n"


def as_json(diff: PlanDiff) -> str:
    if diff.empty:
        return ""
    data = {
        "base": diff.base, "head": diff.head,
        "delta": dataclasses.asdict(diff.delta),
        "experiments": [{**dataclasses.asdict(e), "delta": dataclasses.asdict(e.delta)}
                        for e in diff.experiments],
        "problems": [p.format() for p in diff.problems],
    }
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


# --- I/O: revisions -> snapshots ---------------------------------------------------------------

def _git(root: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if proc.returncode:
        raise TunegitError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}",
                           hint="check the revision name (`git log --oneline`); in CI fetch "
                           "the full history (actions/checkout `fetch-depth: 0`)")
    return proc.stdout


def resolve(root: Path, rev: str) -> str:
    return _git(root, "rev-parse", "--verify", f"{rev}^{{commit}}").decode().strip()


@contextmanager
def exported(root: Path, rev: str) -> Iterator[Path]:
    """The tree of ``rev`` in a temporary directory (`git archive`, no worktree)."""
    data = _git(root, "archive", "--format=tar", rev)
    with tempfile.TemporaryDirectory(prefix="tunegit-rev-") as tmp, \
            tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tmp, filter="data")
        yield Path(tmp)


def _source(ws: Workspace, name: str) -> str:
    plan = ws.experiment_dir(name) / PLAN_FILE
    text = plan.read_text(encoding="utf-8", errors="replace")
    retries = ws.experiment_dir(name) / RETRY_FILE
    if retries.is_file():
        text += "\0" + retries.read_text(encoding="utf-8", errors="replace")
    sites = "".join(p.read_text(encoding="utf-8", errors="replace")
                    for p in sorted((ws.root / "sites").glob("*.yaml")))
    return text + "\0" + sites


def snapshot(ws: Workspace, name: str) -> Snapshot:
    """Analyse one experiment (raises PlanError when its plan is invalid)."""
    plan = ws.experiment_dir(name) / PLAN_FILE
    a = analyse(ws, plan)
    exp, est = a.expansion, a.estimate
    status = read_status(plan.parent / STATUS_FILE)
    return Snapshot(
        name, f"experiments/{name}/{PLAN_FILE}", {r.name: r for r in exp.runs},
        frozenset(f"{e.run}/{e.key}" for e in exp.evaluations),
        Cost(est.gpu_hours, est.train_minutes.value + est.eval_minutes.value, est.disk_gib),
        submitted_runs(status), _source(ws, name), a.loaded.located,
        plan_settings(a.loaded.plan), est.preliminary,
        {r.id: f"`{r.step}` attempt {r.attempt} ({r.reason})"
         for r in retry_requests.load(ws, name)[0]})


def snapshots(ws: Workspace, names: set[str], *, strict: bool) -> dict[str, Snapshot]:
    """Snapshots of ``names``; an invalid plan raises when strict, else counts as absent."""
    out: dict[str, Snapshot] = {}
    problems: list[Problem] = []
    for name in sorted(names):
        if not (ws.experiment_dir(name) / PLAN_FILE).is_file():
            continue
        try:
            out[name] = snapshot(ws, name)
        except (PlanError, status_mod.StatusFormatError) as exc:
            problems += getattr(exc, "problems", ()) or [Problem(name, str(exc))]
    if strict and problems:
        raise PlanError(problems=problems)
    return out


def _changed_names(base_ws: Workspace, head_ws: Workspace) -> set[str]:
    names = set(base_ws.experiments()) | set(head_ws.experiments())
    out = set()
    for name in names:
        texts = []
        for ws in (base_ws, head_ws):
            path = ws.experiment_dir(name) / PLAN_FILE
            texts.append(_source(ws, name) if path.is_file() else None)
        if texts[0] != texts[1]:
            out.add(name)
    return out


def plan_diff(root: Path, base: str, head: str | None = None) -> PlanDiff:
    """Diff the plans of ``base`` and ``head`` (None: the working tree)."""
    base_sha = resolve(root, base)
    with exported(root, base_sha) as base_dir:
        base_ws = Workspace(base_dir)
        if head is None:
            return _diff(base_ws, Workspace(root), base_sha, "working tree")
        head_sha = resolve(root, head)
        with exported(root, head_sha) as head_dir:
            return _diff(base_ws, Workspace(head_dir), base_sha, head_sha)


def _diff(base_ws: Workspace, head_ws: Workspace, base: str, head: str) -> PlanDiff:
    names = _changed_names(base_ws, head_ws)
    head_snaps = snapshots(head_ws, names, strict=True)
    base_snaps = snapshots(base_ws, names, strict=False)
    experiments = diff_snapshots(base_snaps, head_snaps)
    problems = tuple(violation_problem(e, c, head_snaps[e.name].located)
                     for e in experiments for c in e.violations)
    accuracy = accuracy_sentence(summarise(load_pairs(head_ws))) if experiments else ""
    return PlanDiff(base, head, experiments, problems, accuracy)


def immutability_problems(ws: Workspace, base: str) -> list[Problem]:
    """For `tunegit check --base REV`: working-tree changes to runs submitted at REV or since.

    Invalid plans are left to `tunegit check` itself (it reports them located). When no
    tracked plan, status or site file differs from REV's, nothing is exported (the
    pre-commit hook's common case).
    """
    same = subprocess.run(["git", "-C", str(ws.root), "diff", "--quiet", base, "--",
                           "experiments", "sites"], capture_output=True, check=False)
    if same.returncode == 0:
        return []
    try:
        return list(plan_diff(ws.root, base).problems)
    except PlanError:
        return []
