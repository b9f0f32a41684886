"""A tiny Llama (148k parameters) with a SentencePiece tokenizer, for tests and the demo.

torchtune loads it with ``llama2`` components (the catalog's ``tiny-llama``
arch) and inspect loads it with transformers. The HF chat template mirrors
torchtune's Llama2ChatTemplate (``[INST] <<SYS>>\\n...\\n<</SYS>>\\n\\nuser [/INST]``)
with no trailing space after ``[/INST]``, so both sides tokenize prompts alike.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

from tunegit.errors import TunegitError
from tunegit.generators.datagen import pronounceable_words
from tunegit.spec.models import TINY_ARCH

VOCAB_SIZE = 512
CHAT_TEMPLATE = (
    "{% set sys = namespace(text='') %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{% set sys.text = m['content'] %}"
    "{% elif m['role'] == 'user' %}[INST] "
    "{% if sys.text %}<<SYS>>\n{{ sys.text }}\n<</SYS>>\n\n{% endif %}"
    "{{ m['content'] }} [/INST]"
    "{% endif %}{% endfor %}"
)
TRAIN_EXTRA_HINT = "pip install -e '.[train]'"


def _require_train_extra() -> tuple[Any, Any, Any]:
    try:
        import sentencepiece
        import torch
        import transformers
    except ImportError as exc:
        raise TunegitError(f"the tiny model needs the train extra ({exc.name} is missing)",
                           hint=TRAIN_EXTRA_HINT) from exc
    return sentencepiece, torch, transformers


def _corpus(seed: int) -> list[str]:
    rng = random.Random(seed)
    words = pronounceable_words(rng, count=2000, min_len=3, max_len=12)
    return [f"[INST] {w} [/INST] {w.capitalize()}" for w in words]


def _train_tokenizer(spm: Any, dest: Path, seed: int) -> None:
    # In memory: a file-based run records its (temporary) paths in the model, breaking
    # byte-for-byte determinism.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus(seed)), model_writer=model, vocab_size=VOCAB_SIZE,
        hard_vocab_limit=False, model_type="bpe", byte_fallback=True, unk_id=0, bos_id=1,
        eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
    (dest / "tokenizer.model").write_bytes(model.getvalue())


def _build_model(torch: Any, transformers: Any, dest: Path, seed: int) -> None:
    arch = dict(TINY_ARCH)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=arch["vocab_size"], hidden_size=arch["embed_dim"],
        intermediate_size=arch["intermediate_dim"], num_hidden_layers=arch["num_layers"],
        num_attention_heads=arch["num_heads"], num_key_value_heads=arch["num_kv_heads"],
        max_position_embeddings=arch["max_seq_len"], rms_norm_eps=arch["norm_eps"],
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    transformers.LlamaForCausalLM(config).save_pretrained(str(dest))


def _save_hf_tokenizer(transformers: Any, dest: Path) -> None:
    # LlamaTokenizer(vocab_file=...) gives an empty vocab in transformers 5: load the directory.
    tokenizer = transformers.LlamaTokenizer.from_pretrained(str(dest), add_bos_token=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(dest))


def make_tiny_model(dest: Path, seed: int = 0) -> Path:
    """Write the tiny model (HF format plus ``tokenizer.model``) to ``dest``; return ``dest``."""
    spm, torch, transformers = _require_train_extra()
    dest.mkdir(parents=True, exist_ok=True)
    _train_tokenizer(spm, dest, seed)
    _build_model(torch, transformers, dest, seed)
    _save_hf_tokenizer(transformers, dest)
    return dest
