"""torchtune backend: per run setup_finetune.yaml, finetune.yaml and finetune.slurm.

Rendering is pure. The recipe that runs is a real torchtune 0.6.1 recipe
(``lora_finetune_single_device`` or ``lora_finetune_distributed``); the seeds'
``_val`` names (cruijff_kit's own recipes) are recorded in setup_finetune.yaml
only. torchtune 0.6.1 has no validation loop, so for ``validation: true`` the
config carries a ``dataset_val`` block and the job ends with
``python3 -m tunegit.tools.torchtune validation-loss finetune.yaml``, which
scores every saved epoch on that split (see ``main``).
"""

from __future__ import annotations

import json
import math
import posixpath
import sys
from pathlib import Path
from typing import Any

from tunegit.errors import TunegitError
from tunegit.core.expand import Run, dataset_label
from tunegit.spec.models import Catalog, ModelInfo, lookup, unknown_hint
from tunegit.render.templating import render_template
from tunegit.tools.base import RenderContext
from tunegit.tools.slurm_header import header_context

name = "torchtune"
TORCHTUNE_VERSION = "0.6.1"
CHECKPOINTS = "ck-out"
VALIDATION_LOSS_FILE = "validation_loss.json"
VALIDATION_NOTE = ("torchtune 0.6.1 has no validation loop; tunegit computes the validation "
                   "loss of every saved epoch after training")


def run_dir(ctx: RenderContext, run: Run) -> str:
    return ctx.run_dir(run)


def output_dir(ctx: RenderContext, run: Run) -> str:
    """torchtune's output_dir: checkpoints are <output_dir>/epoch_N."""
    return posixpath.join(ctx.run_dir(run), CHECKPOINTS)


def checkpoint_dir(ctx: RenderContext, run: Run, epoch: int) -> str:
    """The complete HF model directory saved after ``epoch`` (0-based)."""
    return posixpath.join(output_dir(ctx, run), f"epoch_{epoch}")


def finetune_script(ctx: RenderContext, run: Run) -> str:
    return posixpath.join(ctx.run_dir(run), "finetune.slurm")


def torchtune_recipe(run: Run) -> str:
    """The recipe torchtune 0.6.1 really has (never the seeds' ``_val`` variants)."""
    return "lora_finetune_single_device" if run.gpus == 1 else "lora_finetune_distributed"


def tune_run_args(run: Run) -> str:
    if run.gpus == 1:
        return torchtune_recipe(run)
    return f"--nproc_per_node {int(run.gpus)} {torchtune_recipe(run)}"


def model_info(run: Run, catalog: Catalog | None = None) -> ModelInfo:
    info = lookup(run.model, catalog)
    if info is None:
        raise TunegitError(
            f"run {run.name}: no torchtune components known for model {run.model!r}",
            hint=unknown_hint(run.model, catalog))
    return info


def device_and_dtype(ctx: RenderContext) -> tuple[str, str]:
    device = ctx.site.device
    return device, ("fp32" if device == "cpu" else ctx.site.dtype)


def render_run(ctx: RenderContext, run: Run) -> dict[str, str]:
    """``{<run>/setup_finetune.yaml, <run>/finetune.yaml, <run>/finetune.slurm: text}``."""
    if run.is_control:
        return {}
    values = config_values(ctx, run)
    return {
        f"{run.name}/setup_finetune.yaml": render_template(
            "torchtune/setup_finetune.yaml.j2", **setup_values(ctx, run, values)),
        f"{run.name}/finetune.yaml": render_template("torchtune/finetune.yaml.j2", **values),
        f"{run.name}/finetune.slurm": render_template(
            "slurm/finetune.slurm.j2", **slurm_values(ctx, run)),
    }


def _dataset_block(ctx: RenderContext, run: Run, field: str, packed: bool) -> dict[str, Any]:
    return {"path": ctx.dataset_path(run.dataset), "field": field, "packed": packed,
            "system_prompt": run.system_prompt or None}


def _check_paths(*paths: str) -> None:
    for path in paths:
        if "${" in path:
            raise TunegitError(f"path {path!r}: `${{` would be read as an OmegaConf "
                               "interpolation by torchtune", hint="rename the directory")


def config_values(ctx: RenderContext, run: Run) -> dict[str, Any]:
    _check_paths(ctx.run_dir(run), ctx.base_model_dir(run), ctx.dataset_path(run.dataset))
    info = model_info(run, ctx.catalog)
    arch = dict(info.arch)
    device, dtype = device_and_dtype(ctx)
    base = ctx.base_model_dir(run)
    seq = run.max_seq_len
    limit = arch.get("max_seq_len", info.max_seq_len)
    if limit:  # the model's position limit caps the tokenizer's
        seq = min(seq, int(limit))
    return {
        "torchtune_version": TORCHTUNE_VERSION, "recipe": torchtune_recipe(run),
        "run_name": run.name, "output_dir": output_dir(ctx, run),
        "model": {"component": info.lora_component, "arch": list(info.arch)},
        "apply_lora_to_output": info.apply_lora_to_output,
        "lora_rank": run.lora_rank, "lora_alpha": run.lora_alpha, "lora_dropout": run.lora_dropout,
        "tokenizer": {"component": info.tokenizer_component, "max_seq_len": seq,
                      "files": [(arg, posixpath.join(base, rel))
                                for arg, rel in info.tokenizer_files]},
        "checkpointer": {"dir": base, "files": list(info.checkpoint_files),
                         "model_type": info.checkpointer_model_type},
        "dataset": _dataset_block(ctx, run, "train", run.packed),
        "dataset_val": _dataset_block(ctx, run, "validation", False) if run.validation else None,
        "seed": run.seed, "batch_size": run.batch_size, "epochs": run.epochs,
        "max_steps_per_epoch": run.max_steps_per_epoch,
        "gradient_accumulation_steps": run.gradient_accumulation_steps,
        "learning_rate": run.learning_rate, "weight_decay": run.weight_decay,
        "fused_optimizer": device == "cuda", "warmup_steps": 5 if info.test_model else 100,
        "device": device, "dtype": dtype,
    }


def setup_values(ctx: RenderContext, run: Run, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_name": run.name, "experiment": ctx.plan.name, "plan_path": ctx.plan_path,
        "model": run.model, "model_id": run.model_id, "model_dir": ctx.base_model_dir(run),
        "model_component": values["model"]["component"], "dataset": run.dataset,
        "dataset_path": ctx.dataset_path(run.dataset), "dataset_label": dataset_label(run.dataset),
        "recipe": run.recipe, "torchtune_recipe": torchtune_recipe(run),
        "validation": run.validation, "validation_note": VALIDATION_NOTE if run.validation else "",
        "system_prompt": run.system_prompt, "lora_rank": run.lora_rank,
        "lora_alpha": run.lora_alpha, "lora_dropout": run.lora_dropout,
        "learning_rate": run.learning_rate, "weight_decay": run.weight_decay,
        "epochs": run.epochs, "batch_size": run.batch_size,
        "gradient_accumulation_steps": run.gradient_accumulation_steps, "packed": run.packed,
        "max_seq_len": run.max_seq_len, "max_steps_per_epoch": run.max_steps_per_epoch,
        "seed": run.seed, "gpus": run.gpus, "device": values["device"],
        "dtype": values["dtype"], "output_dir": values["output_dir"],
    }


def slurm_values(ctx: RenderContext, run: Run) -> dict[str, Any]:
    directory = ctx.run_dir(run)
    header = header_context(ctx, ctx.finetune_job(run, finetune_script(ctx, run)))
    return {**header, "run_dir": directory, "tune_args": tune_run_args(run),
            "validation": run.validation}


# --- run time: validation loss per saved epoch (torchtune 0.6.1 has no validation loop) ---

def epoch_dirs(checkpoints: Path) -> list[tuple[int, Path]]:
    """``epoch_N`` directories under torchtune's output_dir, by epoch."""
    found = []
    for path in checkpoints.glob("epoch_*"):
        suffix = path.name.removeprefix("epoch_")
        if path.is_dir() and suffix.isdigit():
            found.append((int(suffix), path))
    return sorted(found)


def validation_losses(config_file: Path) -> dict[int, float]:
    """Mean token cross-entropy on ``dataset_val`` for every saved epoch (needs the train extra)."""
    from omegaconf import OmegaConf
    from torchtune import config as tt_config

    cfg = OmegaConf.load(config_file)
    tokenizer = tt_config.instantiate(cfg.tokenizer)
    dataset = tt_config.instantiate(cfg.dataset_val, tokenizer)
    return {epoch: _loss(path, dataset, str(cfg.device), int(cfg.batch_size))
            for epoch, path in epoch_dirs(Path(str(cfg.output_dir)))}


def _loss(model_dir: Path, dataset: Any, device: str, batch_size: int) -> float:
    import torch
    from torchtune.data import padded_collate_sft
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model = model.to(device).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            batch = padded_collate_sft([dataset[i] for i in
                                        range(start, min(start + batch_size, len(dataset)))])
            logits = model(input_ids=batch["tokens"].to(device)).logits[:, :-1]
            labels = batch["labels"][:, 1:].to(device)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                ignore_index=-100, reduction="sum")
            total += float(loss)
            count += int((labels != -100).sum())
    return total / count if count else math.nan


def write_validation_losses(config_file: Path) -> dict[int, float]:
    """Compute, print one ``Validation loss epoch N: x`` line each, and save the JSON."""
    from omegaconf import OmegaConf

    losses = validation_losses(config_file)
    for epoch, loss in losses.items():
        print(f"Validation loss epoch {epoch}: {loss:.6f}", flush=True)
    log_dir = Path(str(OmegaConf.load(config_file).output_dir)) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / VALIDATION_LOSS_FILE).write_text(
        json.dumps({str(k): v for k, v in losses.items()}, indent=2) + "\n")
    return losses


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "validation-loss":
        print("usage: python3 -m tunegit.tools.torchtune validation-loss FINETUNE_YAML",
              file=sys.stderr)
        return 2
    losses = write_validation_losses(Path(argv[1]))
    return 0 if losses else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
