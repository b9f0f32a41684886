"""One set of weights: evaluating an epoch loads what was trained, once.

torchtune 0.6.1 saves each epoch as merged weights *and* the LoRA adapter
(adapter_config.json + adapter_model.safetensors) in one directory. Handed that directory,
transformers with peft installed loads the adapter on top of the already merged weights:
the update is applied twice. The evaluation job therefore evaluates a view of the epoch
without the adapter files. Real torchtune on the tiny model (5 LoRA steps at a high rate, so
the adapter is far from zero), the real rendered evaluation script, and transformers'
own loading path (`AutoModelForCausalLM.from_pretrained`, what inspect's hf/local calls),
against the merged safetensors loaded plainly into the architecture.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from test_tiny_pipeline import run_script, scaffolded
from tunegit.spec.plan import Plan
from tunegit.tools import inspect_ai, torchtune

pytestmark = [pytest.mark.slow, pytest.mark.train]


def logits(model, ids):  # type: ignore[no-untyped-def]
    import torch
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def plain(epoch_dir: Path):  # type: ignore[no-untyped-def]
    """The merged checkpoint, loaded into its architecture with no adapter logic at all."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForCausalLM
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(epoch_dir))
    state = {}
    shards = sorted(p for p in epoch_dir.glob("*.safetensors") if not p.name.startswith("adapter"))
    assert shards, f"no weights in {epoch_dir}"
    for shard in shards:
        state.update(load_file(shard))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()
    return model.eval()


def test_evaluation_loads_the_merged_weights_once(tmp_path: Path) -> None:
    pytest.importorskip("torchtune")
    pytest.importorskip("inspect_ai")
    pytest.importorskip("peft")  # what makes transformers read the adapter files
    from transformers import AutoModelForCausalLM

    plan = Plan.model_validate({
        "name": "weights", "question": "Is the adapter applied once?", "models": ["tiny-llama"],
        "dataset": {"path": "tasks/capitalization/input/words_5L_80P_200.json"},
        "factors": {"lora_rank": [8]}, "controls": False,
        "training": {"epochs": 1, "learning_rate": 5e-2, "batch_size": 4, "packed": False,
                     "max_seq_len": 64, "validation": False, "seed": 0,
                     "max_steps_per_epoch": 5},
        "evaluation": {"epochs": "last", "tasks": [
            {"name": "capitalization", "script": "tasks/capitalization/eval.py",
             "task": "capitalization", "max_tokens": 4}]},
    })
    ctx, expansion = scaffolded(tmp_path, plan)
    (run,) = expansion.runs
    run_dir = Path(ctx.run_dir(run))
    result, _ = run_script(run_dir / "finetune.slurm", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    epoch = Path(torchtune.checkpoint_dir(ctx, run, 0))
    assert (epoch / "adapter_config.json").is_file()  # torchtune saved both, side by side

    (item,) = expansion.evaluations_of(run.name)
    result, _ = run_script(Path(inspect_ai.eval_script(ctx, run, item)), run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    chosen = re.search(r"^evaluating (\S+)$", result.stdout, re.M)
    loaded = re.search(r"^loading it from (\S+) ", result.stdout, re.M)
    assert chosen and loaded, result.stdout
    assert Path(chosen.group(1)) == epoch
    evaluated = Path(loaded.group(1))

    ids = list(range(3, 40))
    merged = logits(plain(epoch), ids)
    as_evaluated = logits(AutoModelForCausalLM.from_pretrained(evaluated).eval(), ids)
    assert not list(evaluated.glob("adapter_*"))
    assert (as_evaluated - merged).abs().max() < 1e-5
    base = logits(plain(tmp_path / "models" / "tiny-llama"), ids)
    assert (merged - base).abs().max() > 1e-3  # the fine-tune changed the model
    # The epoch directory as torchtune saved it: with peft installed, transformers reads the
    # adapter files. A peft that matches transformers applies the update a second time; one
    # that does not (peft >= 0.19 with this stack's torchao 0.15) fails to import.
    try:
        twice = logits(AutoModelForCausalLM.from_pretrained(epoch).eval(), ids)
    except ImportError:
        return
    assert (twice - merged).abs().max() > 1e-3, "the adapter is too small to tell"
