"""The catalog of base models tunegit knows: family, size and torchtune components.

Estimates scale by parameter count and the torchtune backend picks its model,
tokenizer and checkpointer components from here. A model is matched by its
short name (the HF id without the organisation), case-insensitively.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    family: str  # torchtune family, e.g. "llama3_2"
    params_b: float  # parameters, in billions
    lora_component: str  # torchtune builder for the LoRA model
    tokenizer_component: str
    checkpointer_model_type: str
    checkpoint_gib: float  # size of one saved epoch (merged weights + adapter)
    tokenizer_file: str = "original/tokenizer.model"
    checkpoint_files: tuple[str, ...] = ("model.safetensors",)
    # Explicit architecture for builders that take it (the tiny test model).
    arch: tuple[tuple[str, int | float], ...] = ()


TINY_ARCH: tuple[tuple[str, int | float], ...] = (
    ("vocab_size", 512),
    ("num_layers", 2),
    ("num_heads", 4),
    ("num_kv_heads", 4),
    ("embed_dim", 64),
    ("intermediate_dim", 128),
    ("max_seq_len", 256),
    ("norm_eps", 1e-5),
)

_LLAMA3_TOK = "torchtune.models.llama3.llama3_tokenizer"
_CATALOG: tuple[tuple[str, ModelInfo], ...] = (
    (
        r"tiny-llama",
        ModelInfo(
            "llama2",
            0.000148,
            "torchtune.models.llama2.lora_llama2",
            "torchtune.models.llama2.llama2_tokenizer",
            "LLAMA2",
            0.001,
            tokenizer_file="tokenizer.model",
            arch=TINY_ARCH,
        ),
    ),
    (
        r"llama-3\.2-1b",
        ModelInfo(
            "llama3_2",
            1.24,
            "torchtune.models.llama3_2.lora_llama3_2_1b",
            _LLAMA3_TOK,
            "LLAMA3_2",
            2.4,
        ),
    ),
    (
        r"llama-3\.2-3b",
        ModelInfo(
            "llama3_2",
            3.21,
            "torchtune.models.llama3_2.lora_llama3_2_3b",
            _LLAMA3_TOK,
            "LLAMA3_2",
            6.1,
            checkpoint_files=(
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
            ),
        ),
    ),
    (
        r"llama-3\.1-8b",
        ModelInfo(
            "llama3_1",
            8.03,
            "torchtune.models.llama3_1.lora_llama3_1_8b",
            _LLAMA3_TOK,
            "LLAMA3",
            15.0,
            checkpoint_files=tuple(f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)),
        ),
    ),
    (
        r"llama-3\.1-70b|llama-3\.3-70b",
        ModelInfo(
            "llama3_1",
            70.6,
            "torchtune.models.llama3_1.lora_llama3_1_70b",
            _LLAMA3_TOK,
            "LLAMA3",
            141.0,
            checkpoint_files=tuple(f"model-{i:05d}-of-00030.safetensors" for i in range(1, 31)),
        ),
    ),
)

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*[bB]\b|-(\d+(?:\.\d+)?)[bB](?:-|$)")


def short_name(model_id: str) -> str:
    """``meta-llama/Llama-3.2-1B-Instruct`` -> ``Llama-3.2-1B-Instruct``."""
    return model_id.rstrip("/").rsplit("/", 1)[-1]


def lookup(model: str) -> ModelInfo | None:
    """The catalog entry for a model id or short name, or None when unknown."""
    name = short_name(model).lower()
    for pattern, info in _CATALOG:
        if re.match(pattern, name):
            return info
    return None


def params_billions(model: str) -> float | None:
    """Parameter count in billions: from the catalog, else from a `-7B-` style name."""
    info = lookup(model)
    if info:
        return info.params_b
    match = _SIZE.search(short_name(model))
    if match:
        return float(match.group(1) or match.group(2))
    return None


def supported_models() -> list[str]:
    return [pattern.replace("\\", "") for pattern, _ in _CATALOG]
