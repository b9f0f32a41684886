"""The catalog of base models tunegit knows: family, size and torchtune components.

Real models are data: ``models.yaml`` next to this module (shipped, one entry per
HF model torchtune 0.6.1 has a LoRA builder for), merged under a lab's own
``models.yaml`` at its repository root (same schema). A model is matched by its
short name (the HF id without the organisation), exactly and case-insensitively;
a near miss is refused with the closest known names. The tiny test model is
defined here, next to the architecture its generator writes.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from tunegit.spec.loader import Located, load_file
from tunegit.spec.plan import Strict
from tunegit.spec.schema_errors import parse_model

SHIPPED_FILE = Path(__file__).with_name("models.yaml")
LAB_FILE = "models.yaml"  # at the experiments repository's root


@dataclasses.dataclass(frozen=True)
class JobSize:
    """What one stage's job of a model needs, where the catalog says (None: the site's)."""

    mem_gb: int | None = None
    cpus_per_task: int | None = None


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    family: str  # torchtune family, e.g. "llama3_2"
    params_b: float  # parameters, in billions
    lora_component: str  # torchtune builder for the LoRA model
    tokenizer_component: str
    checkpointer_model_type: str
    checkpoint_gib: float  # size of one saved epoch (merged weights + adapter)
    # The tokenizer builder's file arguments: (argument, path inside the model directory).
    tokenizer_files: tuple[tuple[str, str], ...] = (("path", "original/tokenizer.model"),)
    checkpoint_files: tuple[str, ...] = ("model.safetensors",)
    # Explicit architecture for builders that take it (component builders, the tiny model).
    arch: tuple[tuple[str, int | float], ...] = ()
    # None: the builder takes no apply_lora_to_output argument (Gemma 2).
    apply_lora_to_output: bool | None = False
    max_seq_len: int | None = None  # the builder's position limit
    hf_model_type: str | None = None  # config.json's model_type
    test_model: bool = False  # tunegit's own tiny model (short warmup)
    finetune_size: JobSize = JobSize()  # a fine-tuning job's memory and CPUs
    eval_size: JobSize = JobSize()  # an evaluation job's

    @property
    def tokenizer_file(self) -> str:
        return self.tokenizer_files[0][1]


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

TINY = ModelInfo(
    "llama2", 0.000148, "torchtune.models.llama2.lora_llama2",
    "torchtune.models.llama2.llama2_tokenizer", "LLAMA2", 0.001,
    tokenizer_files=(("path", "tokenizer.model"),), arch=TINY_ARCH,
    # torchtune's defaults leave the output layer alone; the tiny model (untied output)
    # barely learns without it.
    apply_lora_to_output=True, hf_model_type="llama", test_model=True)


# --- the file schema (shipped and lab catalogs alike) ---

_DOTTED = r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$"


class TokenizerSpec(Strict):
    component: Annotated[str, Field(pattern=_DOTTED, description="torchtune tokenizer builder")]
    files: Annotated[dict[str, str], Field(
        min_length=1, description="builder argument -> file inside the model directory, "
        "e.g. {path: vocab.json, merges_file: merges.txt}")]


class ShardFormat(Strict):
    """torchtune's own shorthand: ``model-{}-of-{}.safetensors`` numbered 1..max_filename."""

    filename_format: Annotated[str, Field(pattern=r"\{\}.*\{\}")]
    max_filename: Annotated[str, Field(pattern=r"^\d+$")]

    def names(self) -> tuple[str, ...]:
        width = len(self.max_filename)
        return tuple(self.filename_format.format(str(i).zfill(width), self.max_filename)
                     for i in range(1, int(self.max_filename) + 1))


class StageSize(Strict):
    mem_gb: Annotated[int, Field(gt=0)] | None = None
    cpus_per_task: Annotated[int, Field(gt=0)] | None = None

    def size(self) -> JobSize:
        return JobSize(self.mem_gb, self.cpus_per_task)


class ModelJobs(Strict):
    """What this model's jobs need; a site's slurm.finetune/evaluation block overrides it."""

    finetune: StageSize = StageSize()
    evaluation: StageSize = StageSize()


class ModelSpec(Strict):
    ids: Annotated[list[str], Field(min_length=1, description="HF ids (org/name) matched")]
    family: str
    params_b: Annotated[float, Field(gt=0)]
    lora_builder: Annotated[str, Field(pattern=_DOTTED)]
    arch: dict[str, int | float] = Field(default_factory=dict)
    apply_lora_to_output: bool | None = False
    tokenizer: TokenizerSpec
    model_type: Annotated[str, Field(pattern=r"^[A-Z0-9_]+$",
                                     description="torchtune checkpointer model_type")]
    checkpoint_files: Annotated[list[str], Field(min_length=1)] | ShardFormat
    max_seq_len: Annotated[int, Field(gt=0)] | None = None
    checkpoint_gib: Annotated[float, Field(gt=0)]
    hf_model_type: str | None = None
    jobs: ModelJobs = ModelJobs()

    def info(self) -> ModelInfo:
        files = self.checkpoint_files
        return ModelInfo(
            self.family, self.params_b, self.lora_builder, self.tokenizer.component,
            self.model_type, self.checkpoint_gib,
            tokenizer_files=tuple(self.tokenizer.files.items()),
            checkpoint_files=tuple(files) if isinstance(files, list) else files.names(),
            arch=tuple(self.arch.items()), apply_lora_to_output=self.apply_lora_to_output,
            max_seq_len=self.max_seq_len, hf_model_type=self.hf_model_type,
            finetune_size=self.jobs.finetune.size(), eval_size=self.jobs.evaluation.size())


class CatalogFile(Strict):
    models: list[ModelSpec]


# --- the catalog ---

@dataclasses.dataclass(frozen=True)
class Catalog:
    """Known models by lower-cased short name: (the name as written, its entry)."""

    entries: Mapping[str, tuple[str, ModelInfo]]

    def lookup(self, model: str) -> ModelInfo | None:
        found = self.entries.get(short_name(model).lower())
        return found[1] if found else None

    def names(self) -> list[str]:
        return sorted(name for name, _ in self.entries.values())

    def suggest(self, model: str) -> list[str]:
        """The known short names closest to ``model`` (difflib), best first."""
        close = difflib.get_close_matches(short_name(model).lower(), list(self.entries), n=3,
                                          cutoff=0.75)
        return [self.entries[key][0] for key in close]

    def over(self, base: Catalog) -> Catalog:
        """This catalog's entries replace ``base``'s of the same short name."""
        return Catalog({**base.entries, **self.entries})


def catalog_of(specs: Iterable[ModelSpec]) -> Catalog:
    entries: dict[str, tuple[str, ModelInfo]] = {}
    for spec in specs:
        info = spec.info()
        for model_id in spec.ids:
            name = short_name(model_id)
            entries[name.lower()] = (name, info)
    return Catalog(entries)


def parse_catalog(located: Located) -> Catalog:
    """A catalog file's entries; raises PlanError with every problem located."""
    return catalog_of(parse_model(located, CatalogFile).models)


@functools.cache
def shipped() -> Catalog:
    """tunegit's own catalog: the tiny test model and ``models.yaml``."""
    base = Catalog({"tiny-llama": ("tiny-llama", TINY)})
    return parse_catalog(load_file(SHIPPED_FILE, "tunegit/spec/models.yaml")).over(base)


def short_name(model_id: str) -> str:
    """``meta-llama/Llama-3.2-1B-Instruct`` -> ``Llama-3.2-1B-Instruct``."""
    return model_id.rstrip("/").rsplit("/", 1)[-1]


def lookup(model: str, catalog: Catalog | None = None) -> ModelInfo | None:
    """The catalog entry for a model id or short name, or None when unknown."""
    return (catalog or shipped()).lookup(model)


_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*[bB]\b|-(\d+(?:\.\d+)?)[bB](?:-|$)")


def params_billions(model: str, catalog: Catalog | None = None) -> float | None:
    """Parameter count in billions: from the catalog, else from a `-7B-` style name."""
    info = lookup(model, catalog)
    if info:
        return info.params_b
    match = _SIZE.search(short_name(model))
    if match:
        return float(match.group(1) or match.group(2))
    return None


def supported_models(catalog: Catalog | None = None) -> list[str]:
    return (catalog or shipped()).names()


def unknown_hint(model: str, catalog: Catalog | None = None) -> str:
    """The way out for a model the catalog does not know."""
    cat = catalog or shipped()
    close = cat.suggest(model)
    add = f"add it to {LAB_FILE} at the repository root (docs/models.md)"
    if close:
        return f"did you mean {close[0]!r}? If not, {add}"
    families = sorted({info.family for _, info in cat.entries.values()})
    return f"{add}; known families: {', '.join(families)}"


# --- what the model directory says (config.json), where it is visible ---

def config_params_b(config: Mapping[str, Any]) -> float | None:
    """A parameter estimate from an HF config.json (decoder-only, gated MLP)."""
    try:
        h, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        inter, vocab = int(config["intermediate_size"]), int(config["vocab_size"])
        heads = int(config["num_attention_heads"])
        kv = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or h // heads)
    except (KeyError, TypeError, ValueError):
        return None
    attention = 2 * h * heads * head_dim + 2 * h * kv * head_dim
    embeddings = vocab * h * (1 if config.get("tie_word_embeddings", False) else 2)
    return (embeddings + layers * (attention + 3 * h * inter)) / 1e9


def config_disagreement(info: ModelInfo, config: Mapping[str, Any]) -> str | None:
    """How config.json disagrees with the catalog entry, or None when it agrees."""
    kind = config.get("model_type")
    if info.hf_model_type and kind and kind != info.hf_model_type:
        return f"config.json says model_type {kind!r}, the catalog {info.hf_model_type!r}"
    params = config_params_b(config)
    if params is not None and abs(params - info.params_b) > 0.15 * info.params_b:
        return (f"config.json describes about {params:.2f}B parameters, "
                f"the catalog {info.params_b}B")
    return None
