"""What every tool backend receives, and the shape a backend has.

A backend renders text (pure: ``{path relative to work_dir: text}``) and
names the paths an executor needs (scripts, checkpoints, log directories).
It never touches the filesystem.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from typing import Protocol

from pathlib import Path

from tunegit.core.expand import Evaluation, Run
from tunegit.core.jobplan import FINETUNE_STAGE, JobPlan, job_name, log_path, site_resources
from tunegit.spec.models import Catalog, short_name
from tunegit.spec.plan import Plan
from tunegit.spec.site import Site


@dataclasses.dataclass(frozen=True)
class RenderContext:
    """Everything rendering needs besides the run itself. Paths are absolute POSIX paths.

    ``time_minutes`` is keyed by run name (fine-tuning) and ``"<run>/<eval key>"``
    (evaluations). ``dataset_paths`` maps a dataset as written in the plan to
    its resolved absolute path (the caller resolves repo root vs. the site's
    data_dir); a missing entry means ``<repo_root>/<path>``.
    """

    plan: Plan
    site: Site
    repo_root: str
    work_dir: str
    models_dir: str
    plan_path: str  # repository-relative
    time_minutes: Mapping[str, int] = dataclasses.field(default_factory=dict)
    dataset_paths: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # The directory holding the `tunegit` package the jobs import (their run-time helpers);
    # empty: jobs use whatever tunegit their environment activation provides.
    package_root: str = ""
    # The attempt each step's job is submitted as (``run`` / ``run/eval key``); default 1.
    attempts: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # The model catalog (the shipped one merged under the lab's models.yaml); None: shipped.
    catalog: Catalog | None = None

    def finetune_minutes(self, run: Run) -> int:
        return self._clamp(self.time_minutes.get(run.name, self.site.slurm.min_time_minutes))

    def eval_minutes(self, run: Run, evaluation: Evaluation) -> int:
        key = f"{run.name}/{evaluation.key}"
        return self._clamp(self.time_minutes.get(key, self.site.slurm.eval_time_minutes))

    def finetune_job(self, run: Run, script: str) -> JobPlan:
        """The fine-tuning job of ``run``: what its script's header says and what is submitted."""
        return self._job(run, None, script, gpus=run.gpus, minutes=self.finetune_minutes(run))

    def eval_job(self, run: Run, evaluation: Evaluation, script: str) -> JobPlan:
        return self._job(run, evaluation.key, script, gpus=1,
                         minutes=self.eval_minutes(run, evaluation))

    def _job(self, run: Run, key: str | None, script: str, *, gpus: int, minutes: int) -> JobPlan:
        attempt = self.attempts.get(run.name if key is None else f"{run.name}/{key}", 1)
        run_dir = self.run_dir(run)
        return JobPlan(
            name=job_name(self.plan.name, run.name, key or FINETUNE_STAGE, attempt),
            script=Path(script), workdir=Path(run_dir), log=Path(log_path(run_dir, key, attempt)),
            resources=site_resources(self.site, gpus=gpus, minutes=minutes))

    def _clamp(self, minutes: int) -> int:
        slurm = self.site.slurm
        return min(max(minutes, slurm.min_time_minutes), slurm.time_limit_max_minutes)

    def repo_path(self, relative: str) -> str:
        """An absolute path for a repository-relative (or already absolute) path."""
        return posixpath.normpath(posixpath.join(self.repo_root, relative))

    def dataset_path(self, dataset: str) -> str:
        return self.dataset_paths.get(dataset) or self.repo_path(dataset)

    def run_dir(self, run: Run) -> str:
        return posixpath.join(self.work_dir, run.name)

    def base_model_dir(self, run: Run) -> str:
        return posixpath.join(self.models_dir, short_name(run.model))


class PreparationTool(Protocol):
    """A fine-tuning backend (``tools.preparation`` in the plan)."""

    name: str

    def render_run(self, ctx: RenderContext, run: Run) -> dict[str, str]: ...

    def finetune_script(self, ctx: RenderContext, run: Run) -> str: ...

    def checkpoint_dir(self, ctx: RenderContext, run: Run, epoch: int) -> str: ...


class EvaluationTool(Protocol):
    """An evaluation backend (``tools.evaluation`` in the plan)."""

    name: str

    def render_evaluation(self, ctx: RenderContext, run: Run,
                          evaluation: Evaluation) -> dict[str, str]: ...

    def eval_script(self, ctx: RenderContext, run: Run, evaluation: Evaluation) -> str: ...

    def eval_log_dir(self, ctx: RenderContext, run: Run, evaluation: Evaluation) -> str: ...
