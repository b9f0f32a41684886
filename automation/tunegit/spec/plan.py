"""The experiment plan (experiments/NAME/experiment.yaml): the user-facing contract.

Keys and meanings follow DESIGN.md's plan contract; additions are welcome,
renames are not (the PR checks and other tools rely on them). Models reject
unknown keys; the loader turns that into "valid keys are: ...".
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, field_validator

NAME_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$"  # no leading dot: never `.` or `..`
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=200)]
PositiveInt = Annotated[int, Field(gt=0)]
# Bounds that keep a typo (epochs: 1000000000) from turning `check` into a denial of service,
# or an estimate into nonsense ("0.0 GiB" for a rank of 10**23): each is far above any real use.
MAX_EPOCHS = 1000
MAX_RUNS = 10_000
MAX_LORA_RANK = 4096  # LoRA ranks in use are 4..256; 4096 is past any model's need
MAX_BATCH_SIZE = 65_536
MAX_SEQ_LEN = 1_048_576  # 2**20 tokens
MAX_GPUS = 64  # one job runs on one node (#SBATCH --nodes=1)
MAX_STEPS = 10_000_000  # gradient accumulation steps, steps per epoch
MAX_SEED = 2**32 - 1  # torchtune's set_seed takes an unsigned 32-bit seed
Epochs = Annotated[int, Field(gt=0, le=MAX_EPOCHS)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)]
LoraRank = Annotated[int, Field(gt=0, le=MAX_LORA_RANK)]
SeqLen = Annotated[int, Field(gt=0, le=MAX_SEQ_LEN)]
Gpus = Annotated[int, Field(gt=0, le=MAX_GPUS)]
Steps = Annotated[int, Field(gt=0, le=MAX_STEPS)]
Finite = Field(allow_inf_nan=False)


def _inside_root(value: str) -> str:
    """A relative path may not climb out of its root (the repository or the site's data_dir)."""
    if ".." in PurePosixPath(value.replace("\\", "/")).parts:
        raise ValueError("may not contain `..`: paths stay inside the repository or data_dir")
    return value


def _relative(value: str) -> str:
    if PurePosixPath(value).is_absolute():
        raise ValueError("must be relative to the repository root")
    if ".git" in PurePosixPath(value.replace("\\", "/")).parts:
        raise ValueError("may not point into .git/: what runs is a file committed in the "
                         "repository, never git's own storage")
    return _inside_root(value)


DataPath = Annotated[str, Field(min_length=1), AfterValidator(_inside_root)]
RepoPath = Annotated[str, Field(min_length=1), AfterValidator(_relative)]
ArgName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]  # a Python parameter

class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tools(Strict):
    """Which framework prepares (fine-tunes) and which evaluates."""

    preparation: str = Field(default="torchtune", description="Fine-tuning tool backend.")
    evaluation: str = Field(default="inspect-ai", description="Evaluation tool backend.")


class DatasetRef(Strict):
    path: DataPath = Field(description="JSON file with train/validation/test splits of "
                           "{input, output}, "
                      "relative to the repository root or the site's data_dir.")
    label: str | None = Field(default=None, description="Short label used in run names; "
                              "default: file stem.")


class Training(Strict):
    """Fine-tuning hyper-parameters shared by all runs (factors override per run)."""

    epochs: Epochs = 1
    learning_rate: Annotated[float, Field(gt=0), Finite] = 3.0e-4
    batch_size: BatchSize | dict[str, BatchSize] = Field(
        default=4, description="One size, or per model short name with a `default` key.")
    lora_rank: LoraRank = 8
    lora_dropout: Annotated[float, Field(ge=0, lt=1), Finite] = 0.0
    weight_decay: Annotated[float, Field(ge=0), Finite] = 0.01
    packed: bool = True
    max_seq_len: SeqLen = 2048
    validation: bool = False
    gpus: Gpus = 1
    gradient_accumulation_steps: Steps = 1
    system_prompt: str = ""
    seed: Annotated[int, Field(ge=0, le=MAX_SEED)] = 42
    max_steps_per_epoch: Steps | None = None
    warmup_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] | None = Field(
        default=None, description="Learning-rate warmup in optimizer steps; default 5% of the "
        "run's steps (at least 1, at most 100).")
    activation_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass: less GPU "
        "memory for longer sequences or larger batches, about a third more time.")

    @field_validator("batch_size")
    @classmethod
    def _per_model_has_default(cls, value: int | dict[str, int]) -> int | dict[str, int]:
        if isinstance(value, dict) and not value:
            raise ValueError("per-model batch sizes need at least a `default` entry")
        return value


class RunTraining(Training):
    """The training of one run: the plan's, with the run's factor levels applied and the
    batch size chosen for its model. Every Training key is here without being listed again."""

    batch_size: BatchSize = 4


# Training keys that stay one value per plan: the GPUs shape every job's resources and
# recipe, and max_steps_per_epoch is a smoke-test cap, not something to compare.
FIXED_TRAINING_KEYS = ("gpus", "max_steps_per_epoch")
# Training keys that may also be experimental factors (besides `model` and `dataset`).
TRAINING_FACTOR_KEYS = tuple(k for k in Training.model_fields if k not in FIXED_TRAINING_KEYS)


class EvalTask(Strict):
    name: Name
    script: RepoPath = Field(description="inspect-ai task file, relative to the repository root.")
    task: str | None = Field(default=None, description="@task function name in the script; "
                             "default: "
                             "the script's only task.")
    dataset: DataPath = Field(default="training", description="`training` (the test split of "
                              "the plan's "
                         "dataset) or a path to a JSON file.")
    split: str = "test"
    description: str = ""
    max_tokens: SeqLen = 32
    args: dict[ArgName, JsonValue] | None = Field(
        default=None, description="The task's own arguments, passed as they are (an existing "
        "inspect task runs unchanged). String values may use {dataset_path} (the dataset as "
        "the job sees it), {split}, {system_prompt} and {max_tokens}. Default: tunegit's "
        "data_file, split and system_prompt.")


EpochChoice = Literal["last", "first", "all", "best"]


class EvaluationPlan(Strict):
    epochs: EpochChoice | list[Annotated[int, Field(ge=0, lt=MAX_EPOCHS)]] = Field(
        default="last",
        description="last | first | all | best | a list of epoch numbers (0-based).")
    tasks: list[EvalTask] = Field(min_length=1)
    matrix: dict[str, list[str]] | None = Field(
        default=None, description="Run name -> task names, for runs that skip some tasks. "
        "Runs not listed get every task.")
    system_prompt: str | None = Field(
        default=None, description="Must equal training.system_prompt when given.")


class TimeLimits(Strict):
    """Job time limits the plan sets itself, in place of the estimate's."""

    finetune_minutes: PositiveInt | None = Field(
        default=None, description="Time limit of each fine-tuning job; default: the estimate "
        "times the site's slurm.time_safety_factor.")
    evaluation_minutes: PositiveInt | None = Field(
        default=None, description="Time limit of each evaluation job; default: as estimated.")


class Plan(Strict):
    """experiments/NAME/experiment.yaml"""

    name: Name = Field(description="task_factor_date; also the experiment's directory name.")
    type: Literal["experiment", "sanity_check"] = "experiment"
    question: str = Field(min_length=1, description="The scientific question.")
    site: Name = Field(default="local", description="sites/<site>.yaml")
    tools: Tools = Tools()
    models: list[str] = Field(min_length=1, description="HF model ids (org/name).")
    dataset: DatasetRef
    factors: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Factor -> levels; `model`, `dataset` or any training key. "
        "Runs are the cartesian product.")
    controls: bool = Field(default=False, description="Add one `<model>_base` run per model: "
                           "evaluated, not trained.")
    run_name: str | None = Field(default=None, min_length=1,
                                 description="Pattern such as `{model}_rank{lora_rank}`; "
                                 "default: model then every other factor.")
    training: Training = Training()
    evaluation: EvaluationPlan
    time_limits: TimeLimits = Field(default_factory=TimeLimits,
                                    description="Job time limits, overriding the estimate's.")
    notes: str = ""
    author: str = ""


def json_schema() -> dict[str, Any]:
    schema = Plan.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tunegit experiment plan"
    return schema
