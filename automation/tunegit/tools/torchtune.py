"""torchtune backend: per run setup_finetune.yaml, finetune.yaml and finetune.slurm.

Rendering is pure. The recipe that runs is a real torchtune 0.6.1 recipe
(``lora_finetune_single_device`` or ``lora_finetune_distributed``); the plan's
recipe name, which ends in ``_val`` when it validates (cruijff_kit's own recipes, not
torchtune's), is recorded in setup_finetune.yaml only. torchtune 0.6.1 has no
validation loop, so for ``validation: true`` the config carries a ``dataset_val``
block and the job ends with
``python3 -m tunegit.tools.torchtune validation-loss finetune.yaml``, which
scores every saved epoch on that split (see ``main``); an evaluation of the
``best`` epoch asks ``python3 -m tunegit.tools.torchtune best-epoch CK_OUT``.

After the job the backend reads its own outputs: the ``epoch_N`` checkpoints and
the training metrics in the job's log and in torchtune's DiskLogger file
(``<run>/ck-out/logs/log_*.txt``: tokens/s per GPU, peak memory, the loss of every step).
"""

from __future__ import annotations

import json
import math
import posixpath
import sys
import tempfile
from pathlib import Path
from typing import Any

from tunegit.core import warmup
from tunegit.core.expand import Run, dataset_label
from tunegit.core.logparse import LossCurve, parse_loss_curve, parse_training_log
from tunegit.errors import TunegitError
from tunegit.files import tail
from tunegit.render.templating import render_template
from tunegit.spec.models import Catalog, ModelInfo, lookup, unknown_hint
from tunegit.tools.base import RenderContext
from tunegit.tools.slurm_header import header_context

name = "torchtune"
# The files a run's job trains from (the engine never rewrites them under a running job).
training_files = ("finetune.yaml", "setup_finetune.yaml")
TORCHTUNE_VERSION = "0.6.1"
CHECKPOINTS = "ck-out"
VALIDATION_LOSS_FILE = "validation_loss.json"
ADAPTER_PREFIX = "adapter_"  # adapter_config.json, adapter_model.safetensors (merged_view)
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


def best_checkpoint_command(ctx: RenderContext, run: Run) -> list[str]:
    """The command that prints the epoch with the lowest validation loss (``best_epoch_dir``)."""
    return ["python3", "-m", "tunegit.tools.torchtune", "best-epoch", output_dir(ctx, run)]


def evaluable_command(ctx: RenderContext, run: Run) -> list[str]:
    """``merged-view EPOCH_DIR DEST``: the epoch as an evaluation must load it (merged_view)."""
    return ["python3", "-m", "tunegit.tools.torchtune", "merged-view"]


def finetune_script(ctx: RenderContext, run: Run) -> str:
    return posixpath.join(ctx.run_dir(run), "finetune.slurm")


def torchtune_recipe(run: Run) -> str:
    """The recipe torchtune 0.6.1 really has (never a ``_val`` variant: it ships none)."""
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
    """finetune.yaml's values: the run's training settings (``training``), and what follows
    from its model, the site and the paths."""
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
        "training": run.training.model_dump(),
        "model": {"component": info.lora_component, "arch": list(info.arch)},
        "apply_lora_to_output": info.apply_lora_to_output,
        "lora_alpha": run.lora_alpha,
        "tokenizer": {"component": info.tokenizer_component, "max_seq_len": seq,
                      "files": [(arg, posixpath.join(base, rel))
                                for arg, rel in info.tokenizer_files]},
        "checkpointer": {"dir": base, "files": list(info.checkpoint_files),
                         "model_type": info.checkpointer_model_type},
        "dataset": _dataset_block(ctx, run, "train", run.packed),
        "dataset_val": _dataset_block(ctx, run, "validation", False) if run.validation else None,
        "fused_optimizer": device == "cuda", "warmup_steps": warmup.warmup_steps(
            run.training.warmup_steps, ctx.total_steps.get(run.name), test_model=info.test_model),
        "device": device, "dtype": dtype,
    }


# setup_finetune.yaml lists the training settings in this fixed order, so each is in the same
# place in every run; a key not named here follows at the end. `validation` is written
# earlier, as validation_during_training.
_SETUP_ORDER = ("system_prompt", "lora_rank", "lora_alpha", "lora_dropout", "learning_rate",
                "weight_decay", "epochs", "batch_size", "gradient_accumulation_steps", "packed",
                "max_seq_len", "max_steps_per_epoch", "seed", "gpus")


def setup_settings(run: Run) -> list[tuple[str, Any]]:
    values = {**run.training.model_dump(exclude={"validation"}), "lora_alpha": run.lora_alpha}
    order = [*_SETUP_ORDER, *(k for k in values if k not in _SETUP_ORDER)]
    return [(k, values[k]) for k in order]


def setup_values(ctx: RenderContext, run: Run, values: dict[str, Any]) -> dict[str, Any]:
    return {
        "run_name": run.name, "experiment": ctx.plan.name, "plan_path": ctx.plan_path,
        "model": run.model, "model_id": run.model_id, "model_dir": ctx.base_model_dir(run),
        "model_component": values["model"]["component"], "dataset": run.dataset,
        "dataset_path": ctx.dataset_path(run.dataset), "dataset_label": dataset_label(run.dataset),
        "recipe": run.recipe, "torchtune_recipe": torchtune_recipe(run),
        "validation": run.validation, "validation_note": VALIDATION_NOTE if run.validation else "",
        "settings": setup_settings(run), "device": values["device"],
        "dtype": values["dtype"], "output_dir": values["output_dir"],
    }


def slurm_values(ctx: RenderContext, run: Run) -> dict[str, Any]:
    directory = ctx.run_dir(run)
    header = header_context(ctx, ctx.finetune_job(run, finetune_script(ctx, run)))
    return {**header, "run_dir": directory, "tune_args": tune_run_args(run),
            "validation": run.validation}


# --- after the job: its checkpoints and what its logs say ------------------------------------

def epoch_dirs(checkpoints: Path) -> list[tuple[int, Path]]:
    """``epoch_N`` directories under torchtune's output_dir, by epoch."""
    found = []
    for path in checkpoints.glob("epoch_*"):
        suffix = path.name.removeprefix("epoch_")
        if path.is_dir() and suffix.isdigit():
            found.append((int(suffix), path))
    return sorted(found)


def checkpoints(ctx: RenderContext, run: Run) -> list[tuple[int, Path]]:
    """The run's saved epochs (0-based) and their model directories."""
    return epoch_dirs(Path(output_dir(ctx, run)))


def training_metrics(ctx: RenderContext, run: Run, log_text: str) -> dict[str, Any]:
    """Speed, memory, loss and checkpoint size from the job's own log text, the DiskLogger
    file and the checkpoints; a measurement that is not there is None."""
    stats = parse_training_log(log_text + "\n" + _disk_log(Path(output_dir(ctx, run))))
    saved = checkpoints(ctx, run)
    peak = stats.training_peak_memory_active_gib or stats.post_init_peak_memory_active_gib
    return {
        "it_per_s": stats.iterations_per_second,
        "tokens_per_s": stats.tokens_per_second_per_gpu,
        "peak_memory_gib": peak,
        "peak_memory_kind": ("training" if stats.training_peak_memory_active_gib
                             else "post-init" if peak else None),
        "checkpoint_gib": round(_dir_gib(saved[0][1]), 4) if saved else None,
        "epochs_saved": len(saved),
        "steps_per_epoch": stats.steps_per_epoch,
        "final_loss": stats.final_loss,
        "validation_loss": ({str(e): v for e, v in stats.validation_loss}
                            if stats.validation_loss else None),
    }


def loss_curve(log_text: str, output_dir: str) -> LossCurve:
    """The loss of every logged step from the job's log and the DiskLogger file under
    ``output_dir``; validation loss per epoch from the log's lines, else the saved JSON."""
    directory = Path(output_dir) if output_dir else None
    curve = parse_loss_curve(log_text + "\n" + (_disk_log(directory) if directory else ""))
    if curve.validation or directory is None:
        return curve
    saved = _saved_validation_losses(directory / "logs" / VALIDATION_LOSS_FILE)
    return LossCurve(curve.steps, tuple(sorted(saved.items())))


def _disk_log(checkpoints: Path) -> str:
    """The newest DiskLogger file of a run (a retried run writes a new one)."""
    files = sorted((checkpoints / "logs").glob("log_*.txt"), key=lambda f: f.stat().st_mtime)
    return tail(files[-1], 2_000_000) if files else ""


def _dir_gib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**30


def merged_view(epoch_dir: Path, dest: Path) -> Path:
    """``dest`` made a directory of links to ``epoch_dir``'s files except the LoRA adapter.

    torchtune 0.6.1 saves each epoch as merged weights and, beside them, the adapter in
    PEFT's format (adapter_config.json, adapter_model.safetensors). Given that directory,
    transformers with peft installed loads the adapter on top of the merged weights (the
    update applied twice), or fails importing a peft that does not match it, or (4.x)
    follows the adapter's base_model_name_or_path to a hub id that cannot be reached
    offline. Without the adapter files it loads the merged weights, once, as trained."""
    if not (epoch_dir / "config.json").is_file():
        raise TunegitError(f"{epoch_dir} is not a saved model (no config.json)",
                           hint="check the fine-tuning log: did training finish?")
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.is_symlink():
            old.unlink()
    for item in sorted(epoch_dir.iterdir()):
        if not item.name.startswith(ADAPTER_PREFIX):
            (dest / item.name).symlink_to(item.resolve())
    return dest


def best_epoch_dir(checkpoints: Path) -> tuple[Path, str]:
    """The epoch with the lowest validation loss, else the last one (with why)."""
    epochs = dict(epoch_dirs(checkpoints))
    if not epochs:
        raise TunegitError(f"no epoch_N checkpoint in {checkpoints}",
                           hint="check the fine-tuning log: did training finish?")
    losses = _saved_validation_losses(checkpoints / "logs" / VALIDATION_LOSS_FILE)
    known = {e: loss for e, loss in losses.items() if e in epochs and math.isfinite(loss)}
    if not known:
        last = max(epochs)
        return epochs[last], f"no validation loss recorded: using the last epoch ({last})"
    best = min(known, key=lambda e: (known[e], e))
    return epochs[best], f"epoch {best} has the lowest validation loss ({known[best]:.6f})"


def _saved_validation_losses(path: Path) -> dict[int, float]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {int(k): float(v) for k, v in data.items()}


# --- run time: validation loss per saved epoch (torchtune 0.6.1 has no validation loop) ---


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

    with tempfile.TemporaryDirectory() as view:  # the merged weights, once (merged_view)
        model: Any = AutoModelForCausalLM.from_pretrained(str(merged_view(model_dir,
                                                                          Path(view))))
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
    if len(argv) == 2 and argv[0] == "validation-loss":
        return 0 if write_validation_losses(Path(argv[1])) else 1
    if len(argv) == 3 and argv[0] == "merged-view":
        print(merged_view(Path(argv[1]), Path(argv[2])))
        return 0
    if len(argv) == 2 and argv[0] == "best-epoch":
        path, why = best_epoch_dir(Path(argv[1]))
        print(why, file=sys.stderr)
        print(path)
        return 0
    print("usage: python3 -m tunegit.tools.torchtune validation-loss FINETUNE_YAML | "
          "best-epoch CK_OUT | merged-view EPOCH_DIR DEST", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except TunegitError as exc:
        print(f"error: {exc.format()}", file=sys.stderr)
        sys.exit(1)
