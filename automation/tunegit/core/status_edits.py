"""Hand edits to runs_status.yaml: what a human change did that only tunegit may do.

runs_status.yaml is tunegit's audit record. A human commit may only do what `tunegit check
--write` does: create the file, or add `pending` records for runs and evaluations the plan
gained. The guard-status hook and CI refuse anything else before it lands; the watcher
restores tunegit's record when such a change reached the branch anyway (a direct push).
"""

from __future__ import annotations

from tunegit.core import status as status_mod
from tunegit.core.states import REASON_BASE_MODEL, SKIPPED
from tunegit.core.status import BASE_NOTE, Step
from tunegit.errors import Problem

FRESH = (Step(), Step(SKIPPED, reason=REASON_BASE_MODEL, note=BASE_NOTE))
HINT = ("runs_status.yaml is written by tunegit's watcher only; undo the edit with "
        "`git checkout HEAD -- {path}` (then `tunegit check --write` if the plan gained runs); "
        "for a new attempt of a failed step, `tunegit retry EXP RUN [EVAL]` asks for it in "
        "retry.yaml, through a pull request; to change a run, give it a new run name")


def hand_edits(old_text: str | None, new_text: str | None, path: str) -> list[Problem]:
    """What a human change from ``old_text`` to ``new_text`` did that only tunegit may do."""
    hint = HINT.format(path=path)
    if new_text is None:
        return [] if old_text is None else [Problem(path, "deleted by hand", hint=hint)]
    try:
        new = status_mod.parse(new_text)
        old = status_mod.parse(old_text) if old_text is not None else None
    except (status_mod.StatusFormatError, ValueError) as exc:
        return [Problem(path, f"unreadable: {exc}", hint=hint)]
    new_steps = {(run, key): step for run, key, step in new.steps()}
    old_steps = {(run, key): step for run, key, step in old.steps()} if old else {}
    problems = []
    if old is not None and (old.run_group, old.plan_commit) != (new.run_group, new.plan_commit):
        problems.append(Problem(path, "run_group or plan_commit changed by hand", hint=hint))
    for (run, key), step in old_steps.items():
        label = f"runs.{run}.{'finetune' if key is None else 'evaluations.' + key}"
        if (run, key) not in new_steps:
            problems.append(Problem(path, "record removed by hand", field=label, hint=hint))
        elif new_steps[(run, key)] != step:
            now = new_steps[(run, key)]
            problems.append(Problem(path, f"record edited by hand (status {step.status} -> "
                                    f"{now.status}, job {step.job_id} -> {now.job_id})",
                                    field=label, hint=hint))
    for (run, key), step in new_steps.items():
        if (run, key) not in old_steps and step not in FRESH:
            label = f"runs.{run}.{'finetune' if key is None else 'evaluations.' + key}"
            problems.append(Problem(path, f"new record is not pending (status {step.status})",
                                    field=label, hint=hint))
    return problems
