"""The model catalog: agreement with torchtune 0.6.1's own recipe configs, exact
matching with "did you mean", a lab's own models.yaml, and config.json checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from planfixtures import make_repo, minimal_plan, run_cli, write_plan
from tunegit.edges.workspace import Workspace
from tunegit.errors import PlanError
from tunegit.spec import models

FILE = "experiments/exp/experiment.yaml"
FAILED = "1 of 1 experiment(s) failed the check\n"
FAMILIES = ("llama3_1", "llama3_2", "llama3_3", "qwen2_5", "mistral", "gemma2", "phi3", "phi4")
NOT_PATHS = {"_component_", "max_seq_len", "prompt_template"}


def shipped_configs() -> list[Path]:
    """Per family and size: torchtune's ``*_lora_single_device`` config, else ``*_lora``."""
    spec = importlib.util.find_spec("torchtune")
    if spec is None or spec.origin is None:
        return []
    root = Path(spec.origin).parents[1] / "recipes" / "configs"  # installed beside torchtune
    found = []
    for family in FAMILIES:
        # `<size>_lora...`: not the distillation (8B_to_1B_KD_lora) or QAT (1B_qat_lora) ones
        single = [p for p in sorted((root / family).glob("*_lora_single_device.yaml"))
                  if "_" not in p.name.removesuffix("_lora_single_device.yaml")]
        sizes = {p.name.removesuffix("_lora_single_device.yaml") for p in single}
        found += single + [p for p in sorted((root / family).glob("*_lora.yaml"))
                           if "_" not in p.name.removesuffix("_lora.yaml")
                           and p.name.removesuffix("_lora.yaml") not in sizes]
    return found


def checkpoint_files(value: Any) -> list[str]:
    if isinstance(value, list):
        return value
    return list(models.ShardFormat.model_validate(value).names())


@pytest.mark.parametrize("config", shipped_configs(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_catalog_agrees_with_torchtune_shipped_config(config: Path) -> None:
    cfg = yaml.safe_load(config.read_text())
    model_dir = cfg["checkpointer"]["checkpoint_dir"].rstrip("/")
    info = models.lookup(Path(model_dir).name)
    assert info is not None, f"{Path(model_dir).name} is not in the catalog"
    assert info.lora_component == cfg["model"]["_component_"]
    assert info.apply_lora_to_output == cfg["model"].get("apply_lora_to_output",
                                                         info.apply_lora_to_output)
    assert info.tokenizer_component == cfg["tokenizer"]["_component_"]
    assert dict(info.tokenizer_files) == {
        arg: str(Path(path).relative_to(model_dir))
        for arg, path in cfg["tokenizer"].items() if arg not in NOT_PATHS}
    assert info.checkpointer_model_type == cfg["checkpointer"]["model_type"]
    assert list(info.checkpoint_files) == checkpoint_files(cfg["checkpointer"]["checkpoint_files"])


def test_every_shipped_lora_config_has_a_catalog_entry() -> None:
    pytest.importorskip("torchtune")
    configs = shipped_configs()
    assert {p.parent.name for p in configs} == set(FAMILIES)
    assert len(configs) == 18  # every size of these families with a LoRA config
    dirs = [Path(yaml.safe_load(p.read_text())["checkpointer"]["checkpoint_dir"]).name
            for p in configs]
    assert [d for d in dirs if models.lookup(d) is None] == []


@pytest.mark.parametrize(("model", "family", "size"), [
    ("Qwen/Qwen2.5-3B-Instruct", "qwen2_5", 3.09),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral", 7.25),
    ("google/gemma-2-9b-it", "gemma2", 9.24),
    ("microsoft/Phi-3-mini-4k-instruct", "phi3", 3.82),
    ("META-LLAMA/llama-3.3-70b-instruct", "llama3_3", 70.6),
])
def test_real_families_are_known_by_exact_short_name(model: str, family: str, size: float) -> None:
    info = models.lookup(model)
    assert info is not None and (info.family, info.params_b) == (family, size)


def test_sharded_checkpoints_are_named_as_the_hf_repository_ships_them() -> None:
    mistral = models.lookup("Mistral-7B-Instruct-v0.3")
    assert mistral is not None and mistral.checkpoint_files == tuple(
        f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3))
    qwen = models.lookup("Qwen2.5-72B-Instruct")
    assert qwen is not None and len(qwen.checkpoint_files) == 37
    assert qwen.checkpoint_files[-1] == "model-00037-of-00037.safetensors"


@pytest.mark.parametrize("model", ["Llama-3.2-1B-Instrcut", "Llama-3.2-1B-Instruct-v2",
                                   "llama-3.2-3b-instruct-awq", "Llama-3.1-8B-Instruct-GGUF",
                                   "tiny-llama-2"])
def test_prefixes_and_near_misses_are_unknown(model: str) -> None:
    assert models.lookup(model) is None


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], model: str,
          lab_catalog: str | None = None) -> tuple[int, str]:
    root = make_repo(tmp_path)
    if lab_catalog is not None:
        (root / "models.yaml").write_text(lab_catalog)
    write_plan(root, "exp", minimal_plan("exp", ("meta-llama/Llama-3.2-1B-Instruct", model)))
    code, _, err = run_cli(capsys, root, "check", "experiments/exp")
    return code, err


def test_near_miss_is_refused_with_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(tmp_path, capsys, "meta-llama/Llama-3.2-1B-Instrcut") == (1, (
        f"{FILE}:4:10: models[0]: torchtune has no known components for "
        "'meta-llama/Llama-3.2-1B-Instrcut'\n"
        "  hint: did you mean 'Llama-3.2-1B-Instruct'? If not, add it to models.yaml at the "
        "repository root (docs/models.md)\n" + FAILED))


def test_unknown_model_is_refused_naming_the_families(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = check(tmp_path, capsys, "acme/Mystery-7B")
    assert code == 1
    assert err.startswith(f"{FILE}:4:10: models[0]: torchtune has no known components for "
                          "'acme/Mystery-7B'\n  hint: add it to models.yaml at the repository "
                          "root (docs/models.md); known families: gemma2, llama2, llama3_1, ")


def test_qwen_passes_the_model_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, err = check(tmp_path, capsys, "Qwen/Qwen2.5-3B-Instruct")
    assert "no known components" not in err
    assert "runs_plan.md: is missing" in err  # the check got past the plan


LAB = """\
models:
  - ids: [acme/Mystery-7B-Instruct]
    family: mistral
    params_b: 7.25
    lora_builder: torchtune.models.mistral.lora_mistral_7b
    tokenizer: {component: torchtune.models.mistral.mistral_tokenizer,
                files: {path: tokenizer.model}}
    model_type: MISTRAL
    checkpoint_files: {filename_format: "model-{}-of-{}.safetensors", max_filename: "00003"}
    checkpoint_gib: 13.5
"""


def test_a_lab_adds_a_model_in_its_own_models_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, err = check(tmp_path, capsys, "acme/Mystery-7B-Instruct", LAB)
    assert "no known components" not in err and "runs_plan.md: is missing" in err
    catalog = Workspace(tmp_path).load_models()
    info = catalog.lookup("Mystery-7B-Instruct")
    assert info is not None and info.checkpoint_files[2] == "model-00003-of-00003.safetensors"
    assert catalog.lookup("Qwen2.5-3B-Instruct") is not None  # merged over the shipped one


def test_a_lab_catalog_error_is_located(tmp_path: Path) -> None:
    make_repo(tmp_path)
    (tmp_path / "models.yaml").write_text(LAB.replace("    params_b: 7.25", "    size: 7"))
    with pytest.raises(PlanError) as err:
        Workspace(tmp_path).load_models()
    text = err.value.format()
    assert "models.yaml:2:5: models[0].params_b: required key is missing\n" in text, text
    assert "models.yaml:4:5: models[0].size: unknown key 'size'\n" in text, text
    assert "  hint: valid keys here are: ids, family, params_b, lora_builder, " in text


QWEN_3B_CONFIG = {  # Qwen/Qwen2.5-3B-Instruct's config.json, the fields read
    "model_type": "qwen2", "hidden_size": 2048, "num_hidden_layers": 36,
    "intermediate_size": 11008, "vocab_size": 151936, "num_attention_heads": 16,
    "num_key_value_heads": 2, "tie_word_embeddings": True}


def test_config_json_agreeing_with_the_catalog_says_nothing() -> None:
    info = models.lookup("Qwen2.5-3B-Instruct")
    assert info is not None
    assert models.config_disagreement(info, QWEN_3B_CONFIG) is None
    assert models.config_params_b(QWEN_3B_CONFIG) == pytest.approx(3.09, rel=0.01)


def test_config_json_disagreeing_with_the_catalog_says_how() -> None:
    info = models.lookup("Qwen2.5-7B-Instruct")
    assert info is not None
    assert models.config_disagreement(info, QWEN_3B_CONFIG) == (
        "config.json describes about 3.09B parameters, the catalog 7.62B")
    assert models.config_disagreement(info, {**QWEN_3B_CONFIG, "model_type": "llama"}) == (
        "config.json says model_type 'llama', the catalog 'qwen2'")


def test_check_warns_when_the_model_directory_holds_another_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path)
    (root / "sites" / "lab.yaml").write_text(
        "executor: local\nmodels_dir: models\noutput_dir: out\n"
        "gpu: {type: cpu, memory_gib: 0, count: 1}\ndevice: cpu\ndtype: fp32\n")
    model = root / "models" / "Llama-3.2-1B-Instruct"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(QWEN_3B_CONFIG))
    write_plan(root, "exp", minimal_plan("exp", ("site: della", "site: lab")))
    code, _, err = run_cli(capsys, root, "check", "--write", "experiments/exp")
    assert code == 0, err
    assert err == (
        f"warning: {FILE}:4:10: models[0]: models/Llama-3.2-1B-Instruct: config.json says "
        "model_type 'qwen2', the catalog 'llama'\n"
        "  hint: check that the directory holds Llama-3.2-1B-Instruct, or correct its entry "
        "in models.yaml (docs/models.md)\n")
