"""The real thing on a tiny model: plan -> expand -> render -> `bash finetune.slurm`
(torchtune LoRA on CPU) -> `bash eval/<stem>.slurm` (inspect-ai) -> a successful log.

Asserts mechanics, not accuracy (a random-init 148k-parameter model learns little).
The system prompt is hostile on purpose: it must reach torchtune's dataset and the
inspect task unchanged and execute nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunegit.core.expand import Expansion, expand
from tunegit.core.logparse import parse_training_log
from tunegit.spec.plan import Plan
from tunegit.spec.site import Site
from tunegit.tools import RenderContext, inspect_ai, torchtune

REPO = Path(__file__).resolve().parents[1]
DATASET = "tasks/capitalization/input/words_5L_80P_200.json"


def hostile_prompt(canary: Path) -> str:
    return (f"Capitalize. \"quotes\" 'single' $(touch {canary}) `touch {canary}` ${{oops}} "
            f"\\${{x}} $HOME\nline two {{braces}} #hash: yes")


def tiny_plan(system_prompt: str) -> Plan:
    return Plan.model_validate({
        "name": "tiny_pipeline", "question": "Do the mechanics work?", "models": ["tiny-llama"],
        "dataset": {"path": DATASET}, "factors": {"lora_rank": [8]}, "controls": True,
        "training": {"epochs": 2, "learning_rate": 1e-2, "batch_size": 4, "packed": False,
                     "max_seq_len": 256, "validation": True, "system_prompt": system_prompt,
                     "seed": 0},
        "evaluation": {"epochs": "best", "tasks": [
            {"name": "capitalization", "script": "tasks/capitalization/eval.py",
             "task": "capitalization", "max_tokens": 8}]},
    })


def run_script(script: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.monotonic()
    result = subprocess.run(["bash", script.name if script.parent == cwd else str(script)],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                            check=False)
    return result, time.monotonic() - start


def scaffold(ctx: RenderContext, expansion: Expansion) -> None:
    for run in expansion.runs:
        files = dict(torchtune.render_run(ctx, run))
        for item in expansion.evaluations_of(run.name):
            files.update(inspect_ai.render_evaluation(ctx, run, item))
        for rel, text in files.items():
            path = Path(ctx.work_dir) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)


def scaffolded(tmp_path: Path, plan: Plan) -> tuple[RenderContext, Expansion]:
    """``plan`` rendered on a CPU site under ``tmp_path``, with an untrained tiny model (for
    the mechanics: pretraining is not what these tests are about)."""
    from tunegit.generators.tinymodel import make_tiny_model

    site = Site.model_validate({"models_dir": str(tmp_path / "models"),
                                "output_dir": str(tmp_path / "out"), "device": "cpu"})
    make_tiny_model(tmp_path / "models" / "tiny-llama", pretrain_steps=0)
    ctx = RenderContext(plan=plan, site=site, repo_root=str(REPO),
                        work_dir=str(tmp_path / "out" / plan.name), models_dir=site.models_dir,
                        plan_path=f"experiments/{plan.name}/experiment.yaml",
                        package_root=str(REPO / "automation"))
    expansion = expand(plan)
    scaffold(ctx, expansion)
    return ctx, expansion


@pytest.mark.slow
@pytest.mark.train
def test_tiny_pipeline(tmp_path: Path) -> None:
    pytest.importorskip("torchtune")
    pytest.importorskip("inspect_ai")
    canary = tmp_path / "CANARY"
    prompt = hostile_prompt(canary)
    plan = tiny_plan(prompt)
    ctx, expansion = scaffolded(tmp_path, plan)
    run, control = expansion.runs

    # fine-tune
    run_dir = Path(ctx.run_dir(run))
    result, train_s = run_script(run_dir / "finetune.slurm", run_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for epoch in (0, 1):
        ck = Path(torchtune.checkpoint_dir(ctx, run, epoch))
        for name in ("model-00001-of-00001.safetensors", "adapter_model.safetensors",
                     "config.json", "tokenizer.model"):
            assert (ck / name).is_file(), ck / name
    stats = parse_training_log(result.stdout + result.stderr)
    assert (stats.steps_per_epoch, stats.epochs) == (40, 2)
    assert [e for e, _ in stats.validation_loss] == [0, 1]
    losses = json.loads((run_dir / "ck-out" / "logs" / "validation_loss.json").read_text())
    assert sorted(losses) == ["0", "1"]
    assert_prompt_reached_torchtune(run_dir / "finetune.yaml", prompt)

    # evaluate the best epoch and the base model
    timings = {"tune run": train_s}
    stdout = {}
    for target in (run, control):
        item = expansion.evaluations_of(target.name)[0]
        script = Path(inspect_ai.eval_script(ctx, target, item))
        result, timings[f"eval {item.key}"] = run_script(script, Path(ctx.run_dir(target)))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        outcome = inspect_ai.read_eval_result(inspect_ai.eval_log_dir(ctx, target, item))
        assert outcome.status == "success" and outcome.metric_name == "accuracy"
        assert outcome.score is not None and outcome.samples == 20
        assert f"status=success accuracy={outcome.score:g}" in result.stdout
        assert_prompt_reached_inspect(outcome.log_path, prompt)
        stdout[target.name] = result.stdout
    best = int(min(losses, key=lambda e: losses[e]))
    assert f"evaluating {torchtune.checkpoint_dir(ctx, run, best)}\n" in stdout[run.name]
    assert f"evaluating {ctx.base_model_dir(control)}\n" in stdout[control.name]
    assert not canary.exists(), "a shell expansion in the system prompt was executed"
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})


def assert_prompt_reached_torchtune(config_file: Path, prompt: str) -> None:
    """Build the training dataset exactly as the recipe does and read the prompt back."""
    from omegaconf import OmegaConf
    from torchtune import config

    cfg = OmegaConf.load(config_file)
    tokenizer = config.instantiate(cfg.tokenizer)
    dataset = config.instantiate(cfg.dataset, tokenizer)
    assert dataset._message_transform.new_system_prompt == prompt
    tokens = dataset[0]["tokens"]
    assert "line two {braces} #hash: yes" in tokenizer.decode(tokens)


def assert_prompt_reached_inspect(log_path: str, prompt: str) -> None:
    from inspect_ai.log import read_eval_log

    log = read_eval_log(log_path, header_only=True)
    assert log.eval.task_args["system_prompt"] == prompt


@pytest.mark.train
def test_capitalization_scores_case_sensitively(tmp_path: Path) -> None:
    """The task's exact match: `Saluv` is right; `mopuj` and `ALUGI` (wrong case) are wrong."""
    pytest.importorskip("inspect_ai")
    from inspect_ai import eval as inspect_eval
    from inspect_ai.model import ModelOutput, ModelUsage, get_model

    data = {"test": [{"input": w, "output": w.capitalize()} for w in ("saluv", "mopuj", "alugi")]}
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    outputs = []
    for text in ("Saluv", "mopuj", "ALUGI"):
        output = ModelOutput.from_content("mockllm/model", text)
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
        outputs.append(output)
    model = get_model("mockllm/model", custom_outputs=outputs)
    sys.path.insert(0, str(REPO / "tasks" / "capitalization"))
    try:
        from eval import capitalization  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    [log] = inspect_eval(capitalization(data_file=str(data_file), system_prompt="be {exact}"),
                         model=model, log_dir=str(tmp_path / "logs"), display="none")
    assert log.status == "success"
    assert log.results is not None
    assert log.results.scores[0].metrics["accuracy"].value == pytest.approx(1 / 3)
