"""Expansion: a Plan becomes Runs and Evaluations, by these rules:

- factors form a cartesian product; `model` is a factor over `models` unless given;
- `controls: true` adds one `<model>_base` run per model: evaluated once per
  task (key without epoch suffix), fine-tuning `skipped`;
- fine-tuned evaluation keys are `<task>_epoch_<N>`;
- LoRA alpha = 2 x rank; the recipe follows GPUs and validation.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
import string
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Annotated, Any

from pydantic import TypeAdapter

from tunegit.spec.models import short_name
from tunegit.spec.plan import DataPath, Plan, RunTraining, Training

FACTOR_LABELS = {
    "lora_rank": "rank", "learning_rate": "lr", "batch_size": "bs", "epochs": "ep",
    "max_seq_len": "seq", "gradient_accumulation_steps": "ga", "lora_dropout": "drop",
    "weight_decay": "wd", "seed": "seed", "packed": "packed", "validation": "val",
}
# The training keys a base-model control uses: it is evaluated, not trained, and its
# evaluation reads only the system prompt (the same one as training) and the seed.
CONTROL_TRAINING_KEYS = ("system_prompt", "seed")


@dataclasses.dataclass(frozen=True)
class Run:
    """One row of the runs table: a fine-tuning run or a base-model control.

    ``training`` is the plan's training section as this run has it; the properties below
    are shorthands for the keys most code reads (a new key is read as ``run.training.key``).
    """

    name: str
    model: str  # short name, e.g. Llama-3.2-1B-Instruct
    model_id: str  # as written in the plan, e.g. meta-llama/Llama-3.2-1B-Instruct
    dataset: str
    is_control: bool
    factors: tuple[tuple[str, Any], ...]  # this run's factor levels, in plan order
    training: RunTraining

    def settings(self) -> dict[str, Any]:
        """Everything that defines the run besides its name: identity, then the training keys
        it uses (every one; for a control only ``CONTROL_TRAINING_KEYS``)."""
        training = self.training.model_dump()
        if self.is_control:
            training = {k: training[k] for k in CONTROL_TRAINING_KEYS}
        return {"model": self.model, "model_id": self.model_id, "dataset": self.dataset,
                "is_control": self.is_control, "factors": self.factors, **training}

    @property
    def epochs(self) -> int:
        return self.training.epochs

    @property
    def learning_rate(self) -> float:
        return self.training.learning_rate

    @property
    def batch_size(self) -> int:
        return self.training.batch_size

    @property
    def lora_rank(self) -> int:
        return self.training.lora_rank

    @property
    def lora_dropout(self) -> float:
        return self.training.lora_dropout

    @property
    def weight_decay(self) -> float:
        return self.training.weight_decay

    @property
    def packed(self) -> bool:
        return self.training.packed

    @property
    def max_seq_len(self) -> int:
        return self.training.max_seq_len

    @property
    def validation(self) -> bool:
        return self.training.validation

    @property
    def gpus(self) -> int:
        return self.training.gpus

    @property
    def gradient_accumulation_steps(self) -> int:
        return self.training.gradient_accumulation_steps

    @property
    def system_prompt(self) -> str:
        return self.training.system_prompt

    @property
    def seed(self) -> int:
        return self.training.seed

    @property
    def max_steps_per_epoch(self) -> int | None:
        return self.training.max_steps_per_epoch

    @property
    def lora_alpha(self) -> int:
        return 2 * self.lora_rank

    @property
    def recipe(self) -> str:
        return recipe_for(self.gpus, self.validation)

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps * self.gpus


@dataclasses.dataclass(frozen=True)
class Evaluation:
    run: str
    task: str
    epoch: int | str | None  # None for controls; "best" resolved after training
    key: str  # <task>_epoch_<N> for fine-tuned runs, <task> for controls
    script: str
    dataset: str
    split: str
    max_tokens: int  # the task's: tokens generated per sample at most

    @property
    def file_stem(self) -> str:
        """Scaffold file name stem: <task>_epoch<N>, or <task> for a control's evaluation."""
        return self.task if self.epoch is None else f"{self.task}_epoch{self.epoch}"


@dataclasses.dataclass(frozen=True)
class Expansion:
    runs: tuple[Run, ...]
    evaluations: tuple[Evaluation, ...]
    factor_levels: tuple[tuple[str, tuple[Any, ...]], ...]

    def run(self, name: str) -> Run:
        return self._runs_by_name[name]

    def evaluations_of(self, run: str) -> tuple[Evaluation, ...]:
        return self._evaluations_by_run.get(run, ())

    @functools.cached_property
    def _runs_by_name(self) -> dict[str, Run]:
        return {r.name: r for r in reversed(self.runs)}  # the first of duplicate names wins

    @functools.cached_property
    def _evaluations_by_run(self) -> dict[str, tuple[Evaluation, ...]]:
        index: dict[str, list[Evaluation]] = {}
        for e in self.evaluations:
            index.setdefault(e.run, []).append(e)
        return {run: tuple(evals) for run, evals in index.items()}

    @property
    def finetuned(self) -> tuple[Run, ...]:
        return tuple(r for r in self.runs if not r.is_control)

    @property
    def controls(self) -> tuple[Run, ...]:
        return tuple(r for r in self.runs if r.is_control)


def recipe_for(gpus: int, validation: bool) -> str:
    base = "lora_finetune_single_device" if gpus == 1 else "lora_finetune_distributed"
    return base + ("_val" if validation else "")


def format_level(value: Any) -> str:
    """A factor level as it appears in a run name: 1e-05 -> 1e-5, 0.0003 -> 3e-4."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value != 0 and abs(value) < 0.01:
            mantissa, exp = f"{value:e}".split("e")
            mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exp)}"
        return f"{value:g}"
    return str(value)


def dataset_label(path: str) -> str:
    return PurePosixPath(path).stem


def default_run_name(factor_names: list[str]) -> str:
    parts = ["{model}"] if "model" in factor_names else []
    for name in factor_names:
        if name == "model":
            continue
        label = FACTOR_LABELS.get(name, name)
        parts.append("{dataset}" if name == "dataset" else label + "{" + name + "}")
    return "_".join(parts) or "{model}"


def pattern_fields(pattern: str) -> list[str]:
    """The `{field}` names of a run-name pattern; ValueError for a malformed pattern."""
    fields = []
    for _, field, spec, conversion in string.Formatter().parse(pattern):
        if field is None:
            continue
        if not field or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + \
                (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{shown}: only plain {{factor}} fields are allowed")
        fields.append(field)
    return fields


def _batch_size_for(plan: Plan, model: str, level: Any) -> int:
    value: Any = plan.training.batch_size if level is None else level
    if isinstance(value, dict):
        chosen: Any = value.get(model, value.get("default", 1))
        return int(chosen)
    return int(value)


def _model_levels(plan: Plan) -> tuple[str, ...]:
    if "model" in plan.factors:
        return tuple(short_name(str(m)) for m in plan.factors["model"])
    return tuple(short_name(m) for m in plan.models)


def factor_levels(plan: Plan) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    levels: dict[str, tuple[Any, ...]] = {}
    if "model" not in plan.factors:
        levels["model"] = _model_levels(plan)
    for key, values in plan.factors.items():
        levels[key] = _model_levels(plan) if key == "model" else tuple(values)
    return tuple(levels.items())


def _model_id(plan: Plan, model: str) -> str:
    return next((m for m in plan.models if short_name(m) == model), model)


@functools.cache
def level_adapter(factor: str) -> TypeAdapter[Any]:
    """The type a factor's levels must have: the training field's, `str` for model/dataset."""
    if factor == "model":
        return TypeAdapter(str)
    if factor == "dataset":
        return TypeAdapter(DataPath)
    field = Training.model_fields[factor]
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return TypeAdapter(annotation)


def coerce_level(factor: str, value: Any) -> Any:
    """A level as the training field would hold it (`"false"` -> False); raises ValidationError."""
    return level_adapter(factor).validate_python(value)


def _make_run(plan: Plan, name: str, combo: Mapping[str, Any], control: bool) -> Run:
    combo = {k: v if k == "model" else coerce_level(k, v) for k, v in combo.items()}
    model = str(combo["model"])
    levels = {k: v for k, v in combo.items() if k in Training.model_fields}
    # Levels and plan values are validated already (coerce_level, the Plan): no second pass.
    training = RunTraining.model_construct(**{
        **dict(plan.training), **levels,
        "batch_size": _batch_size_for(plan, model, combo.get("batch_size"))})
    return Run(
        name=name, model=model, model_id=_model_id(plan, model),
        dataset=str(combo.get("dataset", plan.dataset.path)), is_control=control,
        factors=tuple((k, v) for k, v in combo.items() if k != "model" or "model" in plan.factors
                      or len(plan.models) > 1),
        training=training,
    )


def run_name_for(pattern: str, combo: Mapping[str, Any]) -> str:
    values = {k: (dataset_label(str(v)) if k == "dataset" else format_level(v))
              for k, v in combo.items()}
    return pattern.format(**values)


def eval_epochs(choice: str | list[int], epochs: int) -> list[int | str]:
    """The epochs of a run to evaluate: 0-based numbers, or "best" (resolved after training)."""
    if isinstance(choice, list):
        return list(dict.fromkeys(choice))
    if choice == "last":
        return [epochs - 1]
    if choice == "first":
        return [0]
    if choice == "all":
        return list(range(epochs))
    return ["best"]


def expand(plan: Plan) -> Expansion:
    """Runs (fine-tuned, then controls) and their evaluations. Assumes a validated plan."""
    levels = factor_levels(plan)
    names = [k for k, _ in levels]
    pattern = plan.run_name or default_run_name(names)
    runs: list[Run] = []
    for values in itertools.product(*(v for _, v in levels)):
        combo = dict(zip(names, values, strict=True))
        runs.append(_make_run(plan, run_name_for(pattern, combo), combo, control=False))
    if plan.controls:
        for model in _model_levels(plan):
            runs.append(_make_run(plan, f"{model}_base", {"model": model}, control=True))
    return Expansion(tuple(runs), tuple(_evaluations(plan, runs)), levels)


def _evaluations(plan: Plan, runs: list[Run]) -> list[Evaluation]:
    matrix = plan.evaluation.matrix or {}
    evals = []
    for run in runs:
        wanted = matrix.get(run.name)
        for task in plan.evaluation.tasks:
            if wanted is not None and task.name not in wanted:
                continue
            dataset = run.dataset if task.dataset == "training" else task.dataset
            epochs: list[int | str | None] = (
                [None] if run.is_control else list(eval_epochs(plan.evaluation.epochs, run.epochs)))
            for epoch in epochs:
                key = task.name if epoch is None else f"{task.name}_epoch_{epoch}"
                evals.append(Evaluation(run.name, task.name, epoch, key, task.script, dataset,
                                        task.split, task.max_tokens))
    return evals


VALID_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
