"""What every tool backend receives, and the shape a backend has over a run's whole life.

Before the job a backend renders text (pure: ``{path relative to work_dir: text}``) and
names the paths an executor needs (scripts, checkpoints, log directories); rendering
never touches the filesystem. After the job it reads its own outputs: a preparation tool
its checkpoints, training metrics and loss curve, an evaluation tool its result and the
score of every sample (read from the paths runs_status.yaml recorded, so results can be
computed wherever the outputs are, without the plan's site). Nothing outside a
backend imports it by name: the others reach it through these Protocols (the evaluation
tool finds a run's checkpoints through ``RenderContext.preparation``).
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunegit.core.expand import Evaluation, Run
from tunegit.core.jobplan import FINETUNE_STAGE, JobPlan, job_name, log_path, site_resources
from tunegit.core.logparse import LossCurve
from tunegit.spec.models import Catalog, JobSize, lookup, short_name
from tunegit.spec.plan import Plan
from tunegit.spec.site import Site, StageResources

if TYPE_CHECKING:  # core.results imports scipy, which `tunegit check` must not load
    from tunegit.core.results import SampleTable


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
    # Optimizer steps of each run's fine-tuning (by run name), where the dataset is known.
    total_steps: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def finetune_minutes(self, run: Run) -> int:
        return self._clamp(self.time_minutes.get(run.name, self.site.slurm.min_time_minutes))

    def eval_minutes(self, run: Run, evaluation: Evaluation) -> int:
        key = f"{run.name}/{evaluation.key}"
        return self._clamp(self.time_minutes.get(key, self.site.slurm.eval_time_minutes))

    def finetune_job(self, run: Run, script: str) -> JobPlan:
        """The fine-tuning job of ``run``: what its script's header says and what is submitted."""
        info = lookup(run.model, self.catalog)
        return self._job(run, None, script, gpus=run.gpus, minutes=self.finetune_minutes(run),
                         stage=self.site.slurm.finetune, model=info.finetune_size if info else None)

    def eval_job(self, run: Run, evaluation: Evaluation, script: str) -> JobPlan:
        stage, info = self.site.slurm.evaluation, lookup(run.model, self.catalog)
        return self._job(run, evaluation.key, script, gpus=stage.gpus,
                         minutes=self.eval_minutes(run, evaluation), stage=stage,
                         model=info.eval_size if info else None)

    def _job(self, run: Run, key: str | None, script: str, *, gpus: int, minutes: int,
             stage: StageResources, model: JobSize | None) -> JobPlan:
        """A job sized by the site's defaults as the model catalog (``model``) and the site's
        ``stage`` block override them."""
        attempt = self.attempts.get(run.name if key is None else f"{run.name}/{key}", 1)
        run_dir = self.run_dir(run)
        return JobPlan(
            name=job_name(self.plan.name, run.name, key or FINETUNE_STAGE, attempt),
            script=Path(script), workdir=Path(run_dir), log=Path(log_path(run_dir, key, attempt)),
            resources=site_resources(self.site, gpus=gpus, minutes=minutes, stage=stage,
                                     model=model))

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

    @property
    def preparation(self) -> PreparationTool:
        """The plan's preparation tool: where a run's checkpoints are."""
        from tunegit.tools import get_preparation  # the registry imports this module first

        return get_preparation(self.plan.tools.preparation)


EVAL_SUCCESS = "success"
EVAL_MISSING = "missing"  # the job left no result to read


@dataclasses.dataclass(frozen=True)
class EvalResult:
    """One evaluation's outcome, as its tool read it from its own log."""

    status: str  # EVAL_SUCCESS, else what the tool says instead (error, cancelled, missing)
    scores: Mapping[str, Mapping[str, float]]  # every scorer -> its metrics -> value
    metric_name: str  # the headline metric: the first scorer's accuracy, else its first metric
    score: float | None  # that metric's value
    log_path: str
    samples: int
    error: str

    @property
    def ok(self) -> bool:
        return self.status == EVAL_SUCCESS


class PreparationTool(Protocol):
    """A fine-tuning backend (``tools.preparation`` in the plan)."""

    name: str
    training_files: tuple[str, ...]  # in the run's directory: what its job trains from

    def render_run(self, ctx: RenderContext, run: Run) -> dict[str, str]: ...

    def finetune_script(self, ctx: RenderContext, run: Run) -> str: ...

    def output_dir(self, ctx: RenderContext, run: Run) -> str:
        """Where the run's checkpoints and the tool's own logs go."""

    def checkpoint_dir(self, ctx: RenderContext, run: Run, epoch: int) -> str:
        """The model directory saved after ``epoch`` (0-based), as an evaluation loads it."""

    def best_checkpoint_command(self, ctx: RenderContext, run: Run) -> list[str]:
        """A command (argv) that, once the run has trained, prints the model directory of its
        best epoch on stdout and why on stderr."""

    def evaluable_command(self, ctx: RenderContext, run: Run) -> list[str]:
        """A command (argv) that, given one of this tool's model directories and a directory
        to fill (two more arguments), prints a model directory that loads as trained, once
        (torchtune: the epoch without the LoRA adapter it saves beside the merged weights)."""

    # after the job: it reads what the run left behind

    def checkpoints(self, ctx: RenderContext, run: Run) -> list[tuple[int, Path]]:
        """The saved epochs (0-based) and their model directories."""

    def training_metrics(self, ctx: RenderContext, run: Run, log_text: str) -> dict[str, Any]:
        """Measurements (speed, memory, loss, checkpoint size) from the job's own log text
        and the tool's files; None for one that is not there."""

    def loss_curve(self, log_text: str, output_dir: str) -> LossCurve:
        """Training loss per logged step (with its epoch) and validation loss per epoch, from
        the job's own log text and the tool's files under ``output_dir`` (the fine-tuning
        step's output in runs_status.yaml; "" when none was recorded)."""


class EvaluationTool(Protocol):
    """An evaluation backend (``tools.evaluation`` in the plan)."""

    name: str

    def render_evaluation(self, ctx: RenderContext, run: Run,
                          evaluation: Evaluation) -> dict[str, str]: ...

    def eval_script(self, ctx: RenderContext, run: Run, evaluation: Evaluation) -> str: ...

    def eval_log_dir(self, ctx: RenderContext, run: Run, evaluation: Evaluation) -> str: ...

    def read_result(self, ctx: RenderContext, run: Run, evaluation: Evaluation) -> EvalResult:
        """The evaluation's outcome, read after its job; a TunegitError when it cannot be read
        here (the tool is not installed)."""

    def read_sample_scores(self, log: str) -> SampleTable | None:
        """Every scorer's value per sample id (a float), from the log ``read_result`` named
        (runs_status.yaml's output of the evaluation) or the newest log in a directory of
        them; None when there is none here; a TunegitError when the tool is not installed."""
