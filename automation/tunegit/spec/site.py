"""Sites (sites/NAME.yaml): where and how a plan runs: the cluster's paths, scheduler settings
and job environment, kept out of the plans that name the site."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from tunegit.spec.plan import Strict

PositiveInt = Annotated[int, Field(gt=0)]
# The validation context key naming the registered executors (the loader passes them: the
# registry lives with the executors, which come after this module).
EXECUTORS_CONTEXT = "executors"


class Gpu(Strict):
    type: str = Field(default="cpu", description="e.g. A100-80GB, H100; `cpu` when none.")
    memory_gib: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(
        default=0, description="Memory of one GPU.")
    count: PositiveInt = Field(default=1, description="GPUs available to this site at once.")
    gres_type: str = Field(default="", description="The cluster's name for this GPU in "
                           "--gres (`sinfo -o %G`, e.g. a100): jobs ask for gpu:<gres_type>:N; "
                           "empty: any GPU (gpu:N).")

    @property
    def is_cpu(self) -> bool:
        """No GPU at this site (``type: cpu``, any case): jobs ask for no GPUs."""
        return self.type.strip().lower() == "cpu"


class StageResources(Strict):
    """What the jobs of one stage ask for where it differs from the site's defaults
    (``slurm.cpus_per_task`` and the others); unset: the default."""

    cpus_per_task: PositiveInt | None = None
    mem_gb: PositiveInt | None = None
    partition: str | None = None
    constraint: str | None = None
    qos: str | None = None


class EvaluationResources(StageResources):
    gpus: Annotated[int, Field(ge=0)] = Field(
        default=1, description="GPUs of one evaluation job (none on a CPU site).")


class Slurm(Strict):
    account: str = ""
    partition: str = ""
    qos: str = ""
    constraint: str = ""
    cpus_per_task: PositiveInt = 4
    mem_gb: PositiveInt = 32
    eval_time_minutes: PositiveInt = 30
    time_limit_max_minutes: PositiveInt = 24 * 60
    time_safety_factor: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 1.5
    min_time_minutes: PositiveInt = 10
    extra_sbatch: list[str] = Field(default_factory=list,
                                    description="More `#SBATCH` options, e.g. `--mail-type=END`.")
    poll_interval_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 60.0
    finetune: StageResources = Field(
        default_factory=StageResources, description="Fine-tuning jobs: what differs from the "
        "defaults above (their GPUs are the plan's training.gpus).")
    evaluation: EvaluationResources = Field(
        default_factory=EvaluationResources, description="Evaluation jobs: what differs from "
        "the defaults above, e.g. less memory or another partition, and their GPUs.")
    submit_retry_s: Annotated[float, Field(gt=0, allow_inf_nan=False)] = Field(
        default=60.0, description="After sbatch refuses a job for now (a QOS or partition "
        "limit, a busy controller) it is tried again this much later, twice as late after "
        "each refusal in a row, at most 30 minutes later.")


class Environment(Strict):
    purge: bool = Field(default=False, description="`module purge` before loading `modules` "
                        "(a clean module set, whatever the submitting shell had loaded).")
    modules: list[str] = Field(default_factory=list, description="`module load` these first.")
    activate: str = Field(default="", description="Shell line that activates the Python "
                          "environment, "
                          "e.g. `conda activate ttenv`.")
    variables: dict[str, str] = Field(default_factory=dict)
    setup: list[str] = Field(default_factory=list, description="Shell lines every job runs "
                             "before its work, after the variables are exported.")
    teardown: list[str] = Field(default_factory=list, description="Shell lines every job runs "
                                "when it ends, failed or not (an EXIT trap; the job's exit "
                                "status is kept).")


class Site(Strict):
    name: str = ""
    executor: str = Field(default="local", description="Where jobs run: a registered "
                          "executor, e.g. `local` (this machine) or `slurm`.")
    models_dir: str = Field(description="Base models live in <models_dir>/<model short name>.")
    data_dir: str = Field(default="", description="Relative dataset paths are looked up here "
                          "(after the repository root).")
    output_dir: str = Field(description="Checkpoints go to <output_dir>/<experiment>/<run>.")
    prior_runs: list[str] = Field(default_factory=list,
                                  description="Directories holding earlier torchtune outputs "
                                  "and logs, mined for estimates.")
    gpu: Gpu = Gpu()
    device: Literal["cuda", "cpu"] = "cuda"
    dtype: Literal["bf16", "fp32"] = "bf16"
    max_parallel: PositiveInt = Field(default=1, description="Jobs run at once (local "
                                      "executor), counted across all the experiments.")
    max_submitted: PositiveInt | None = Field(
        default=None, description="At most this many of tunegit's jobs queued or running at "
        "once on this site, across all experiments (a cluster's cap on jobs per user): more "
        "are submitted in later cycles as these end. None: no cap.")
    slurm: Slurm = Slurm()
    environment: Environment = Environment()
    require_signed_commits: bool = False

    @field_validator("executor")
    @classmethod
    def _registered(cls, value: str, info: ValidationInfo) -> str:
        known: Collection[str] | None = (info.context or {}).get(EXECUTORS_CONTEXT)
        if known is not None and value not in known:
            raise PydanticCustomError("unknown_executor", "unknown executor {name}", {
                "name": repr(value), "hint": "registered executors: " + ", ".join(sorted(known))})
        return value


def expand_path(value: str) -> str:
    """Expand ~ and $VARS the way a job's shell would."""
    return os.path.expanduser(os.path.expandvars(value))


def json_schema() -> dict[str, Any]:
    schema = Site.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tunegit site"
    return schema
