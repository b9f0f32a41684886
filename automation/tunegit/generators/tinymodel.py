"""A tiny Llama (148k parameters) that can copy text, for tests and the demo.

torchtune loads it with ``llama2`` components (the catalog's ``tiny-llama``
arch) and inspect loads it with transformers. The HF chat template mirrors
torchtune's Llama2ChatTemplate (``[INST] <<SYS>>\\n...\\n<</SYS>>\\n\\nuser [/INST]``)
with no trailing space after ``[/INST]``, so both sides tokenize prompts alike.

A randomly initialised model gives LoRA nothing to adapt: the demo's fine-tunes
would learn nothing a reader can see. So the base is pretrained for about a minute
on a generic task, answering a word with the same word (lowercase, Capitalized and
UPPERCASE words alike), tokenized by torchtune's own Llama 2 tokenizer and chat
template, exactly as fine-tuning will be. It never sees a word change case: as a
control it answers ``zebra`` with ``zebra``, and a fine-tune has to learn the change.
The tokenizer is SentencePiece (Llama 2's format, loaders and special ids) with
character pieces, so capitalizing is a change of one token.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunegit.errors import TunegitError
from tunegit.generators.datagen import pronounceable_words
from tunegit.spec.models import TINY_ARCH
from tunegit.version import install_hint

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
TRAIN_EXTRA_HINT = install_hint("train")
# Copying is learnt to ~94% of held-out five-letter words at this length, batch and rate
# (measured on two CPU cores: about a minute and a half).
PRETRAIN_STEPS = 1500
PRETRAIN_BATCH = 32
PRETRAIN_LR = 6e-3
PROGRESS_EVERY = 200

Progress = Callable[[str], None]


def _require_train_extra() -> tuple[Any, Any, Any]:
    try:
        import sentencepiece
        import torch
        import transformers
    except ImportError as exc:
        raise TunegitError(f"the tiny model needs the train extra ({exc.name} is missing)",
                           hint=TRAIN_EXTRA_HINT) from exc
    return sentencepiece, torch, transformers


def copy_words(seed: int, count: int = 3000) -> list[str]:
    """The pretraining words: each in lowercase, Capitalized and UPPERCASE."""
    words = pronounceable_words(random.Random(seed), count=count, min_len=3, max_len=10)
    return [v for w in words for v in (w, w.capitalize(), w.upper())]


def _train_tokenizer(spm: Any, dest: Path, words: list[str]) -> None:
    # In memory: a file-based run records its (temporary) paths in the model, breaking
    # byte-for-byte determinism.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(f"[INST] {w} [/INST] {w}" for w in words), model_writer=model,
        vocab_size=VOCAB_SIZE, hard_vocab_limit=False, model_type="char", byte_fallback=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
        # As Llama 2's tokenizer, text is not normalized: a newline stays a newline (byte
        # pieces) on both sides. The default (nmt_nfkc) turns it into a space in torchtune's
        # SentencePiece but not in transformers' tokenizer. Extra spaces are still removed,
        # as torchtune's template pieces (" [/INST]") would otherwise add one.
        normalization_rule_name="identity", remove_extra_whitespaces=True)
    (dest / "tokenizer.model").write_bytes(model.getvalue())


def _build_model(torch: Any, transformers: Any, seed: int) -> Any:
    arch = dict(TINY_ARCH)
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=arch["vocab_size"], hidden_size=arch["embed_dim"],
        intermediate_size=arch["intermediate_dim"], num_hidden_layers=arch["num_layers"],
        num_attention_heads=arch["num_heads"], num_key_value_heads=arch["num_kv_heads"],
        max_position_embeddings=arch["max_seq_len"], rms_norm_eps=arch["norm_eps"],
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    return transformers.LlamaForCausalLM(config)


def copy_examples(tokenizer_path: Path, words: list[str]) -> list[tuple[list[int], list[bool]]]:
    """(tokens, masked) per word as torchtune's fine-tuning tokenizes a prompt/answer pair."""
    from torchtune.data import Message
    from torchtune.models.llama2 import llama2_tokenizer

    max_seq_len = int(dict(TINY_ARCH)["max_seq_len"])
    tokenizer = llama2_tokenizer(str(tokenizer_path), max_seq_len=max_seq_len)
    return [tokenizer.tokenize_messages([Message(role="user", content=w, masked=True),
                                         Message(role="assistant", content=w)])
            for w in words]


def _batch(torch: Any, examples: list[tuple[list[int], list[bool]]]) -> dict[str, Any]:
    width = max(len(tokens) for tokens, _ in examples)
    ids = torch.full((len(examples), width), 2)
    labels = torch.full((len(examples), width), -100)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (tokens, masked) in enumerate(examples):
        ids[i, :len(tokens)] = torch.tensor(tokens)
        attention[i, :len(tokens)] = 1
        labels[i, :len(tokens)] = torch.tensor(
            [-100 if m else t for t, m in zip(tokens, masked, strict=True)])
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def pretrain(torch: Any, model: Any, examples: list[tuple[list[int], list[bool]]], seed: int,
             steps: int = PRETRAIN_STEPS, progress: Progress | None = None) -> float:
    """Train ``model`` on ``examples`` (one-cycle AdamW); return the last batch's loss."""
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=PRETRAIN_LR, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=PRETRAIN_LR,
                                                   total_steps=max(steps, 1), pct_start=0.1)
    model.train()
    loss = float("nan")
    for step in range(1, steps + 1):
        out = model(**_batch(torch, [rng.choice(examples) for _ in range(PRETRAIN_BATCH)]))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        loss = float(out.loss.item())
        if progress and (step % PROGRESS_EVERY == 0 or step == steps):
            progress(f"  pretraining to copy words: step {step}/{steps}, loss {loss:.3f}")
    model.eval()
    return loss


def _save_hf_tokenizer(transformers: Any, dest: Path) -> None:
    # LlamaTokenizer(vocab_file=...) gives an empty vocab in transformers 5: load the directory.
    tokenizer = transformers.LlamaTokenizer.from_pretrained(str(dest), add_bos_token=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(dest))


def make_tiny_model(dest: Path, seed: int = 0, *, pretrain_steps: int = PRETRAIN_STEPS,
                    progress: Progress | None = None) -> Path:
    """Write the tiny model (HF format plus ``tokenizer.model``) to ``dest``; return ``dest``.

    Deterministic for ``seed`` on one machine. ``pretrain_steps=0`` leaves it random.
    """
    spm, torch, transformers = _require_train_extra()
    dest.mkdir(parents=True, exist_ok=True)
    words = copy_words(seed)
    _train_tokenizer(spm, dest, words)
    model = _build_model(torch, transformers, seed)
    if pretrain_steps:
        pretrain(torch, model, copy_examples(dest / "tokenizer.model", words), seed,
                 pretrain_steps, progress)
    model.save_pretrained(str(dest))
    _save_hf_tokenizer(transformers, dest)
    return dest
