"""The tiny model: one prompt for training and evaluation, and the same model for a seed.

torchtune tokenizes a fine-tuning example with its Llama 2 tokenizer and chat template;
inspect-ai renders the HF chat template to text and tokenizes that (its hf provider:
``apply_chat_template(..., tokenize=False)`` then ``tokenizer(text)``). Both must give the
model the same prompt tokens, or the evaluation asks a question training never showed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.train,
    pytest.mark.skipif(
        importlib.util.find_spec("torchtune") is None
        or importlib.util.find_spec("transformers") is None,
        reason="needs the train extra (pip install -e '.[train]')",
    ),
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tunegit.generators.tinymodel import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", pretrain_steps=0)


def torchtune_prompt(model_dir: Path, system: str, user: str) -> list[int]:
    """The masked (prompt) tokens of a training example, as torchtune's dataset makes it."""
    from torchtune.data import Message
    from torchtune.models.llama2 import llama2_tokenizer

    tokenizer = llama2_tokenizer(str(model_dir / "tokenizer.model"), max_seq_len=256)
    messages = [Message(role="system", content=system, masked=True)] if system else []
    messages += [Message(role="user", content=user, masked=True),
                 Message(role="assistant", content=user.capitalize())]
    tokens, mask = tokenizer.tokenize_messages(messages)
    return [t for t, masked in zip(tokens, mask, strict=True) if masked]


def inspect_prompt(model_dir: Path, system: str, user: str) -> list[int]:
    """The prompt tokens inspect-ai's hf provider feeds the model."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return list(tokenizer(text)["input_ids"])


# torchtune 0.6.1 encodes Llama2ChatTemplate's pieces one by one, each with SentencePiece's
# dummy-prefix space ("\n<</SYS>>\n\n" becomes "▁\n<</SYS>>..."), while transformers
# encodes the rendered text once: with a system prompt the two differ by those spaces.
SYSTEM_PIECES = pytest.mark.xfail(
    strict=True, reason="torchtune adds a dummy-prefix space per template piece")


@pytest.mark.parametrize("system", [
    "", pytest.param("Capitalize the word.", marks=SYSTEM_PIECES),
    pytest.param("two\nlines: {braces} $HOME", marks=SYSTEM_PIECES)])
def test_evaluation_sees_the_prompt_training_saw(tiny: Path, system: str) -> None:
    expected = torchtune_prompt(tiny, system, "zebra")
    assert expected[0] == 1  # BOS, on both sides
    assert inspect_prompt(tiny, system, "zebra") == expected


def test_capitalizing_is_a_change_of_one_token(tiny: Path) -> None:
    import sentencepiece

    spm = sentencepiece.SentencePieceProcessor(model_file=str(tiny / "tokenizer.model"))
    lower, upper = spm.encode("zebra"), spm.encode("Zebra")
    assert len(lower) == len(upper)
    assert [a != b for a, b in zip(lower, upper, strict=True)].count(True) == 1


def test_the_same_seed_makes_the_same_model(tmp_path: Path) -> None:
    from tunegit.generators.tinymodel import make_tiny_model

    made = [make_tiny_model(tmp_path / name, seed=3, pretrain_steps=20) for name in ("a", "b")]
    other = make_tiny_model(tmp_path / "c", seed=4, pretrain_steps=20)
    weights = [(d / "model.safetensors").read_bytes() for d in (*made, other)]
    assert weights[0] == weights[1]
    assert weights[0] != weights[2]
    assert (made[0] / "tokenizer.model").read_bytes() == (made[1] / "tokenizer.model").read_bytes()
