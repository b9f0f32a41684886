"""Rendering of torchtune / inspect-ai / SLURM files: golden files for the 2x2
example (two models x two ranks, with controls), torchtune's own validator, and quoting of
hostile values.

Refresh the golden files with ``pytest tests/test_tools_render.py --update-golden``
(or TUNEGIT_UPDATE_GOLDEN=1) and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunegit.core.expand import Expansion, expand
from tunegit.errors import TunegitError
from tunegit.spec.plan import Plan
from tunegit.spec.site import Site
from tunegit.tools import (
    EVALUATION,
    PREPARATION,
    RenderContext,
    get_evaluation,
    get_preparation,
    inspect_ai,
    torchtune,
)

GOLDEN = Path(__file__).parent / "golden" / "tools_render"
HOSTILE = ("Say \"hi\" & it's $(touch PROMPT1) `touch PROMPT2` ${oops} \\${x} $HOME; rm -rf /\n"
           "second line {braces} #not-a-comment: yes")


def seed_plan(**training: Any) -> Plan:
    return Plan.model_validate({
        "name": "cap_8L_lora_comparison_2025-10-22",
        "question": "Does LoRA rank matter across model sizes?",
        "site": "della",
        "models": ["meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct"],
        "dataset": {"path": "tasks/capitalization/input/words_8L_80P_10000.json"},
        "factors": {"model": ["Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct"],
                    "lora_rank": [4, 64]},
        "controls": True,
        "run_name": "{model}_rank{lora_rank}",
        "training": {"epochs": 2, "learning_rate": 3.0e-4,
                     "batch_size": {"Llama-3.2-1B-Instruct": 16, "default": 8},
                     "packed": True, "max_seq_len": 2048, "validation": True, "gpus": 1,
                     "system_prompt": "", "seed": 42, **training},
        "evaluation": {"epochs": "last", "tasks": [
            {"name": "capitalization_8L", "script": "tasks/capitalization/eval.py",
             "task": "capitalization", "dataset": "training"}]},
    })


def slurm_site() -> Site:
    return Site.model_validate({
        "name": "della", "executor": "slurm", "models_dir": "/models",
        "output_dir": "/scratch/x", "device": "cuda", "dtype": "bf16",
        "gpu": {"type": "A100-80GB", "memory_gib": 80},
        "slurm": {"account": "msalganik", "partition": "gpu", "constraint": "gpu80",
                  "extra_sbatch": ["--mail-type=END"]},
        "environment": {"modules": ["anaconda3/2024.6"], "activate": "conda activate ttenv",
                        "variables": {"WANDB_MODE": "offline"}},
    })


def context(plan: Plan, site: Site | None = None, repo_root: str = "/repo") -> RenderContext:
    return RenderContext(
        plan=plan, site=site or slurm_site(), repo_root=repo_root, work_dir="/scratch/x",
        models_dir="/models", plan_path=f"experiments/{plan.name}/experiment.yaml",
        package_root=f"{repo_root}/automation",
        time_minutes={"Llama-3.2-1B-Instruct_rank4": 95,
                      "Llama-3.2-1B-Instruct_rank4/capitalization_8L_epoch_1": 25})


def render_all(ctx: RenderContext, expansion: Expansion) -> dict[str, str]:
    prep = get_preparation(ctx.plan.tools.preparation)
    evaluation = get_evaluation(ctx.plan.tools.evaluation)
    files: dict[str, str] = {}
    for run in expansion.runs:
        files.update(prep.render_run(ctx, run))
        for item in expansion.evaluations_of(run.name):
            files.update(evaluation.render_evaluation(ctx, run, item))
    return files


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    plan = seed_plan()
    return render_all(context(plan), expand(plan))


def test_golden_files(rendered: dict[str, str], update_golden: bool) -> None:
    if update_golden or os.environ.get("TUNEGIT_UPDATE_GOLDEN") == "1":
        shutil.rmtree(GOLDEN, ignore_errors=True)
        for rel, text in rendered.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_text(text)
    on_disk = {p.relative_to(GOLDEN).as_posix(): p.read_text()
               for p in GOLDEN.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(rendered), "file set differs: run with --update-golden"
    for rel, text in rendered.items():
        assert text == on_disk[rel], f"{rel} differs from tests/golden: run with --update-golden"


def test_scaffold_layout(rendered: dict[str, str]) -> None:
    assert sorted(rendered) == sorted(
        [f"Llama-3.2-{m}-Instruct_rank{r}/{f}" for m in ("1B", "3B") for r in (4, 64)
         for f in ("setup_finetune.yaml", "finetune.yaml", "finetune.slurm",
                   "eval/capitalization_8L_epoch1.slurm",
                   "eval/capitalization_8L_epoch1.task.json")]
        + [f"Llama-3.2-{m}-Instruct_base/eval/capitalization_8L.{ext}"
           for m in ("1B", "3B") for ext in ("slurm", "task.json")])


def test_finetune_config_values(rendered: dict[str, str]) -> None:
    cfg = yaml.safe_load(rendered["Llama-3.2-3B-Instruct_rank64/finetune.yaml"])
    assert cfg["model"]["_component_"] == "torchtune.models.llama3_2.lora_llama3_2_3b"
    assert (cfg["model"]["lora_rank"], cfg["model"]["lora_alpha"]) == (64, 128)
    assert cfg["output_dir"] == "/scratch/x/Llama-3.2-3B-Instruct_rank64/ck-out"
    assert cfg["tokenizer"]["path"] == "/models/Llama-3.2-3B-Instruct/original/tokenizer.model"
    assert cfg["checkpointer"]["checkpoint_files"] == [
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert cfg["batch_size"] == 8 and cfg["epochs"] == 2 and cfg["optimizer"]["lr"] == 3.0e-4
    data_file = "/repo/tasks/capitalization/input/words_8L_80P_10000.json"
    assert cfg["dataset"]["data_files"] == data_file
    assert (cfg["dataset"]["field"], cfg["dataset"]["packed"]) == ("train", True)
    assert cfg["dataset"]["new_system_prompt"] is None
    assert cfg["dataset_val"]["field"] == "validation"
    assert (cfg["device"], cfg["dtype"]) == ("cuda", "bf16")
    assert cfg["metric_logger"]["log_dir"] == "${output_dir}/logs"


def test_setup_records_seed_recipe_and_real_recipe(rendered: dict[str, str]) -> None:
    setup = yaml.safe_load(rendered["Llama-3.2-1B-Instruct_rank4/setup_finetune.yaml"])
    assert setup["recipe"] == "lora_finetune_single_device_val"
    assert setup["torchtune_recipe"] == "lora_finetune_single_device"
    assert (setup["lora_alpha"], setup["batch_size"]) == (8, 16)
    script = rendered["Llama-3.2-1B-Instruct_rank4/finetune.slurm"]
    assert "\ntune run lora_finetune_single_device --config finetune.yaml\n" in script
    assert "python3 -m tunegit.tools.torchtune validation-loss finetune.yaml" in script


def test_sbatch_header(rendered: dict[str, str]) -> None:
    script = rendered["Llama-3.2-1B-Instruct_rank4/finetune.slurm"]
    assert script.startswith("#!/bin/bash\n")
    sbatch = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert sbatch == sorted(sbatch)
    for option in ("--job-name=tg:cap_8L_lora_comparison_2025-10-22:Llama-3.2-1B-Instruct_rank4:ft",
                   "--time=1:35:00", "--gres=gpu:1", "--account=msalganik", "--partition=gpu",
                   "--constraint=gpu80", "--mail-type=END", "--mem=32G", "--cpus-per-task=4",
                   "--output=/scratch/x/Llama-3.2-1B-Instruct_rank4/logs/finetune.log"):
        assert f"#SBATCH {option}" in sbatch
    assert not any("--qos" in line for line in sbatch)
    evaluation = rendered["Llama-3.2-1B-Instruct_rank4/eval/capitalization_8L_epoch1.slurm"]
    assert "#SBATCH --time=0:25:00" in evaluation
    assert "#SBATCH --time=0:30:00" in rendered[
        "Llama-3.2-3B-Instruct_rank4/eval/capitalization_8L_epoch1.slurm"]


def test_cpu_site_has_no_gres_and_fp32() -> None:
    site = slurm_site().model_copy(update={"device": "cpu", "gpu": slurm_site().gpu.model_copy(
        update={"type": "cpu"})})
    plan = seed_plan()
    run = expand(plan).runs[0]
    files = torchtune.render_run(context(plan, site), run)
    assert "--gres" not in files[f"{run.name}/finetune.slurm"]
    assert "dtype: fp32" in files[f"{run.name}/finetune.yaml"]


def test_eval_script_targets(rendered: dict[str, str]) -> None:
    tuned = rendered["Llama-3.2-1B-Instruct_rank64/eval/capitalization_8L_epoch1.slurm"]
    assert "MODEL_PATH=/scratch/x/Llama-3.2-1B-Instruct_rank64/ck-out/epoch_1\n" in tuned
    assert "inspect eval tasks/capitalization/eval.py@capitalization" in tuned
    assert "--log-dir \"$LOG_DIR\"" in tuned and "-M do_sample=false" in tuned
    assert tuned.rstrip().endswith('python3 -m tunegit.tools.inspect_ai check "$LOG_DIR"')
    base = rendered["Llama-3.2-3B-Instruct_base/eval/capitalization_8L.slurm"]
    assert "MODEL_PATH=/models/Llama-3.2-3B-Instruct\n" in base
    assert "LOG_DIR=/scratch/x/Llama-3.2-3B-Instruct_base/eval/logs/capitalization_8L\n" in base


def test_best_epoch_is_chosen_at_run_time() -> None:
    plan = seed_plan()
    plan = plan.model_copy(update={"evaluation": plan.evaluation.model_copy(
        update={"epochs": "best"})})
    expansion = expand(plan)
    run = expansion.runs[0]
    files = inspect_ai.render_evaluation(context(plan), run, expansion.evaluations_of(run.name)[0])
    script = files[f"{run.name}/eval/capitalization_8L_epochbest.slurm"]
    # The preparation tool picks the epoch: the evaluation tool only runs its command.
    assert ('MODEL_PATH="$(python3 -m tunegit.tools.torchtune best-epoch '
            f'/scratch/x/{run.name}/ck-out)"') in script


def test_distributed_recipe() -> None:
    plan = seed_plan(gpus=2, validation=False)
    run = expand(plan).runs[0]
    script = torchtune.render_run(context(plan), run)[f"{run.name}/finetune.slurm"]
    assert "tune run --nproc_per_node 2 lora_finetune_distributed --config finetune.yaml" in script
    assert "#SBATCH --gres=gpu:2" in script and "validation-loss" not in script


def test_helper_paths() -> None:
    plan = seed_plan()
    expansion = expand(plan)
    ctx, run = context(plan), expansion.runs[0]
    item = expansion.evaluations_of(run.name)[0]
    assert torchtune.checkpoint_dir(ctx, run, 1) == f"/scratch/x/{run.name}/ck-out/epoch_1"
    assert torchtune.finetune_script(ctx, run) == f"/scratch/x/{run.name}/finetune.slurm"
    assert inspect_ai.eval_script(ctx, run, item) == (
        f"/scratch/x/{run.name}/eval/capitalization_8L_epoch1.slurm")
    assert inspect_ai.eval_log_dir(ctx, run, item) == (
        f"/scratch/x/{run.name}/eval/logs/capitalization_8L_epoch1")


def test_registry() -> None:
    assert sorted(PREPARATION) == ["torchtune"] and sorted(EVALUATION) == ["inspect-ai"]
    assert get_preparation("torchtune") is torchtune
    with pytest.raises(TunegitError) as err:
        get_evaluation("lm-eval")
    assert "unknown evaluation tool 'lm-eval'" in err.value.format()
    assert "supported: inspect-ai" in err.value.format()


def test_unknown_model_is_a_clear_error() -> None:
    plan = seed_plan().model_copy(
        update={"models": ["acme/Mystery-7B"], "factors": {}, "run_name": None})
    with pytest.raises(TunegitError, match="no torchtune components known for model 'Mystery-7B'"):
        torchtune.render_run(context(plan), expand(plan).runs[0])


@pytest.mark.parametrize("extra", ["--mail-user=a b", "--comment=x\nrm -rf /", "mail-type=END"])
def test_unsafe_sbatch_values_are_refused(extra: str) -> None:
    site = slurm_site()
    slurm = site.slurm.model_copy(update={"extra_sbatch": [extra]})
    site = site.model_copy(update={"slurm": slurm})
    plan = seed_plan()
    with pytest.raises(TunegitError):
        torchtune.render_run(context(plan, site), expand(plan).runs[0])


# --- hostile values -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def hostile() -> tuple[RenderContext, dict[str, str]]:
    plan = seed_plan(system_prompt=HOSTILE)
    ctx = context(plan, repo_root="/tmp/re po/$(touch PWNED3)/`x`/it's")
    return ctx, render_all(ctx, expand(plan))


def test_system_prompt_never_reaches_a_shell_line(
        hostile: tuple[RenderContext, dict[str, str]]) -> None:
    _, files = hostile
    for rel, text in files.items():
        if rel.endswith(".slurm"):
            assert "PROMPT" not in text and "oops" not in text, rel
            subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_system_prompt_arrives_verbatim_in_task_config_and_setup(
        hostile: tuple[RenderContext, dict[str, str]]) -> None:
    _, files = hostile
    run = "Llama-3.2-1B-Instruct_rank4"
    task = json.loads(files[f"{run}/eval/capitalization_8L_epoch1.task.json"])
    assert task["system_prompt"] == HOSTILE and task["split"] == "test"
    assert yaml.safe_load(files[f"{run}/setup_finetune.yaml"])["system_prompt"] == HOSTILE


def test_repo_root_is_quoted_in_shell_lines(hostile: tuple[RenderContext, dict[str, str]]) -> None:
    ctx, files = hostile
    script = files["Llama-3.2-1B-Instruct_rank4/eval/capitalization_8L_epoch1.slurm"]
    cd_lines = [shlex.split(line) for line in script.splitlines() if line.startswith("cd ")]
    assert ["cd", ctx.repo_root] in cd_lines
    exports = [shlex.split(line) for line in script.splitlines() if line.startswith("export PYT")]
    assert exports == [["export", f"PYTHONPATH={ctx.repo_root}/automation"]]


@pytest.mark.train
def test_torchtune_resolves_system_prompt_verbatim(
        hostile: tuple[RenderContext, dict[str, str]]) -> None:
    """torchtune's own config.instantiate (double OmegaConf resolution) gets the exact text."""
    pytest.importorskip("torchtune")
    from omegaconf import OmegaConf
    from torchtune import config

    _, files = hostile
    cfg = OmegaConf.create(files["Llama-3.2-1B-Instruct_rank4/finetune.yaml"])
    node = copy.deepcopy(cfg.dataset)
    node["_component_"] = "builtins.dict"  # the same resolution path, a harmless component
    assert config.instantiate(node)["new_system_prompt"] == HOSTILE


@pytest.mark.train
def test_tune_validate_accepts_rendered_configs(rendered: dict[str, str], tmp_path: Path) -> None:
    """`tune validate` on one config (the real CLI), its check in-process on the others."""
    pytest.importorskip("torchtune")
    from omegaconf import OmegaConf
    from torchtune import config

    configs = {rel: text for rel, text in rendered.items() if rel.endswith("/finetune.yaml")}
    assert len(configs) == 4
    for text in configs.values():
        config.validate(OmegaConf.create(text))  # what `tune validate` runs; raises ConfigError
    path = tmp_path / "finetune.yaml"
    path.write_text(configs["Llama-3.2-3B-Instruct_rank64/finetune.yaml"])
    tune = Path(sys.executable).parent / "tune"
    result = subprocess.run([str(tune), "validate", str(path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config is well-formed!" in result.stdout


@pytest.mark.train
def test_tune_validate_rejects_a_broken_config(rendered: dict[str, str]) -> None:
    """The check above can fail: a misspelled builder argument is caught."""
    pytest.importorskip("torchtune")
    from omegaconf import OmegaConf
    from torchtune import config
    from torchtune.config._errors import ConfigError

    text = rendered["Llama-3.2-1B-Instruct_rank4/finetune.yaml"].replace("lora_rank:", "lora_rnk:")
    with pytest.raises(ConfigError):
        config.validate(OmegaConf.create(text))
