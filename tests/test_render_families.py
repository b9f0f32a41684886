"""Rendering per model family: golden files for a plan mixing Llama 3.2, Qwen2.5 and
Mistral on the della site, and torchtune's own validator on every catalog entry.

Add golden files with ``pytest tests/test_render_families.py --update-golden`` and
review them; existing ones change only with a reviewed reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from test_tools_render import render_all
from tunegit.core.expand import expand
from tunegit.edges.workspace import Workspace
from tunegit.spec import models
from tunegit.spec.plan import Plan
from tunegit.tools import RenderContext, torchtune

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "golden" / "families"
MIXED = ["meta-llama/Llama-3.2-1B-Instruct", "Qwen/Qwen2.5-3B-Instruct",
         "mistralai/Mistral-7B-Instruct-v0.3"]


def plan_of(model_ids: list[str]) -> Plan:
    return Plan.model_validate({
        "name": "families_2025-11-01", "question": "Does the family matter?", "site": "della",
        "models": model_ids, "dataset": {"path": "tasks/capitalization/input/words_4L.json"},
        "factors": {"lora_rank": [8]}, "controls": False,
        "training": {"epochs": 1, "learning_rate": 2.0e-4, "batch_size": 4, "packed": False,
                     "max_seq_len": 2048, "gpus": 1, "system_prompt": "", "seed": 42},
        "evaluation": {"epochs": "last", "tasks": [
            {"name": "capitalization", "script": "tasks/capitalization/eval.py",
             "dataset": "training"}]},
    })


def context(plan: Plan) -> RenderContext:
    site = Workspace(REPO).load_site("della")
    return RenderContext(plan=plan, site=site, repo_root="/repo", work_dir="/scratch/x",
                         models_dir="/models", plan_path=f"experiments/{plan.name}/experiment.yaml",
                         package_root="/repo/automation")


def scaffold(plan: Plan) -> dict[str, str]:
    return render_all(context(plan), expand(plan))


@pytest.fixture(scope="module")
def mixed() -> dict[str, str]:
    return scaffold(plan_of(MIXED))


def test_mixed_family_scaffold_matches_golden_files(
    mixed: dict[str, str], update_golden: bool
) -> None:
    # setup_finetune.yaml says nothing per family that finetune.yaml does not; its
    # golden files are test_tools_render's.
    files = {rel: text for rel, text in mixed.items()
             if not rel.endswith("/setup_finetune.yaml")}
    if update_golden or os.environ.get("TUNEGIT_UPDATE_GOLDEN") == "1":
        for rel, text in files.items():
            (GOLDEN / rel).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / rel).write_text(text)
    on_disk = {p.relative_to(GOLDEN).as_posix(): p.read_text()
               for p in GOLDEN.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(files), "file set differs: run with --update-golden"
    for rel, text in files.items():
        assert text == on_disk[rel], f"{rel} differs from tests/golden: run with --update-golden"


def finetune(files: dict[str, str], run: str) -> Any:
    return yaml.safe_load(files[f"{run}/finetune.yaml"])


def test_each_family_gets_its_own_components(mixed: dict[str, str]) -> None:
    qwen = finetune(mixed, "Qwen2.5-3B-Instruct_rank8")
    assert qwen["model"]["_component_"] == "torchtune.models.qwen2_5.lora_qwen2_5_3b"
    assert qwen["tokenizer"] == {
        "_component_": "torchtune.models.qwen2_5.qwen2_5_tokenizer",
        "path": "/models/Qwen2.5-3B-Instruct/vocab.json",
        "merges_file": "/models/Qwen2.5-3B-Instruct/merges.txt", "max_seq_len": 2048}
    assert qwen["checkpointer"]["model_type"] == "QWEN2"
    mistral = finetune(mixed, "Mistral-7B-Instruct-v0.3_rank8")
    assert mistral["model"]["vocab_size"] == 32768  # v0.3's vocabulary, not lora_mistral_7b's
    assert mistral["checkpointer"]["checkpoint_files"] == [
        f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert mistral["tokenizer"]["path"] == "/models/Mistral-7B-Instruct-v0.3/tokenizer.model"
    assert mistral["lr_scheduler"]["num_warmup_steps"] == 100


def catalog_entries() -> list[str]:
    """One short name per distinct catalog entry (the tiny model included)."""
    seen: dict[int, str] = {}
    for name, info in models.shipped().entries.values():
        seen.setdefault(id(info), name)
    return sorted(seen.values())


def test_gemma_config_has_no_apply_lora_to_output() -> None:
    text = scaffold(plan_of(["google/gemma-2-2b-it"]))["gemma-2-2b-it_rank8/finetune.yaml"]
    assert "apply_lora_to_output" not in text  # lora_gemma2_2b takes no such argument


@pytest.mark.train
@pytest.mark.parametrize("model", catalog_entries())
def test_tune_validate_accepts_every_catalog_entry(model: str) -> None:
    pytest.importorskip("torchtune")
    from omegaconf import OmegaConf
    from torchtune import config

    files = scaffold(plan_of([model]))
    text = files[f"{models.short_name(model)}_rank8/finetune.yaml"]
    config.validate(OmegaConf.create(text))  # what `tune validate` runs; raises ConfigError


@pytest.mark.train
def test_tune_validate_cli_accepts_a_qwen_config(mixed: dict[str, str], tmp_path: Path) -> None:
    pytest.importorskip("torchtune")
    path = tmp_path / "finetune.yaml"
    path.write_text(mixed["Qwen2.5-3B-Instruct_rank8/finetune.yaml"])
    tune = Path(sys.executable).parent / "tune"
    result = subprocess.run([str(tune), "validate", str(path)], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Config is well-formed!" in result.stdout


def test_model_position_limit_caps_max_seq_len() -> None:
    plan = plan_of(["microsoft/Phi-3-mini-4k-instruct"])
    plan = plan.model_copy(update={"training": plan.training.model_copy(
        update={"max_seq_len": 8192})})
    run = expand(plan).runs[0]
    assert torchtune.config_values(context(plan), run)["tokenizer"]["max_seq_len"] == 4096
