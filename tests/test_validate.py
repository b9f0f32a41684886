"""The validation checklist and resource checks, through `tunegit check` (exact text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from planfixtures import make_repo, minimal_plan, run_cli, write_plan

FILE = "experiments/exp/experiment.yaml"
FAILED = "1 of 1 experiment(s) failed the check\n"
P = minimal_plan("exp")
MATRIX = "  matrix:\n"


def check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, *extra: str
) -> tuple[int, str, str]:
    root = tmp_path if (tmp_path / "sites").is_dir() else make_repo(tmp_path)
    write_plan(root, "exp", text)
    code, out, err = run_cli(capsys, root, "check", *extra, "experiments/exp")
    assert "Traceback" not in out + err
    assert code in (0, 1)
    return code, out, err


def fails_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    code, _, err = check(tmp_path, capsys, text)
    assert code == 1
    assert err == expected + FAILED


def test_minimal_plan_passes_with_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check(tmp_path, capsys, P, "--write")
    assert code == 0, err
    assert out.splitlines()[-1].startswith(f"{FILE}: ok: 3 runs, 3 evaluations, ")


def test_duplicate_run_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = P.replace("lora_rank: [4, 64]", "lora_rank: [4, 64]\n  seed: [1, 2]")
    hint = "  hint: add the varying factors to `run_name`\n"
    fails_with(
        tmp_path,
        capsys,
        text,
        f"{FILE}:10:11: run_name: run name 'Llama-3.2-1B-Instruct_rank4' is produced 2 "
        f"times\n{hint}"
        f"{FILE}:10:11: run_name: run name 'Llama-3.2-1B-Instruct_rank64' is produced 2 "
        f"times\n{hint}",
    )


def test_invalid_characters_in_run_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = P.replace("lora_rank: [4, 64]", "dataset: [a/b c.json]").replace(
        "{model}_rank{lora_rank}", "{model}_{dataset}"
    )
    fails_with(
        tmp_path,
        capsys,
        text,
        f"{FILE}:9:11: run_name: run name 'Llama-3.2-1B-Instruct_b c' has characters "
        "outside [A-Za-z0-9._-]\n  hint: change `run_name` or the factor levels\n",
    )


def test_matrix_naming_unknown_runs_and_tasks_and_a_run_never_evaluated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        P
        + MATRIX
        + (
            "    nope_rank4: [capitalization]\n"
            "    Llama-3.2-1B-Instruct_rank4: [capitalization, typo]\n"
            "    Llama-3.2-1B-Instruct_base: []\n"
        )
    )
    fails_with(
        tmp_path,
        capsys,
        text,
        f"{FILE}:21:17: evaluation.matrix.nope_rank4: names unknown run 'nope_rank4'\n"
        "  hint: runs are: Llama-3.2-1B-Instruct_base, Llama-3.2-1B-Instruct_rank4, "
        "Llama-3.2-1B-Instruct_rank64\n"
        f"{FILE}:22:51: evaluation.matrix.Llama-3.2-1B-Instruct_rank4[1]: names unknown "
        "task 'typo'\n  hint: tasks are: capitalization\n"
        f"{FILE}:23:33: evaluation.matrix.Llama-3.2-1B-Instruct_base: run "
        "'Llama-3.2-1B-Instruct_base' is never evaluated\n"
        "  hint: give it at least one task in the matrix\n",
    )


def test_epochs_list_out_of_range(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hint = "  hint: epochs are 0-based; use `last` for the final one\n"
    fails_with(
        tmp_path,
        capsys,
        P.replace("  epochs: last", "  epochs: [0, 2, 5]"),
        f"{FILE}:15:15: evaluation.epochs[1]: epoch 2 does not exist: runs train 2 "
        f"epoch(s), numbered 0..1\n{hint}"
        f"{FILE}:15:18: evaluation.epochs[2]: epoch 5 does not exist: runs train 2 "
        f"epoch(s), numbered 0..1\n{hint}",
    )


def test_best_without_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails_with(
        tmp_path,
        capsys,
        P.replace("  epochs: last", "  epochs: best"),
        f"{FILE}:15:11: evaluation.epochs: `best` needs validation during training\n"
        "  hint: set `training.validation: true` or choose last | all\n",
    )


def test_best_with_validation_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = P.replace("  epochs: last", "  epochs: best").replace(
        "  packed: false", "  packed: false\n  validation: true"
    )
    code, _, err = check(tmp_path, capsys, text, "--write")
    assert code == 0, err


def test_evaluation_system_prompt_must_equal_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails_with(
        tmp_path,
        capsys,
        P.replace("  epochs: last", "  epochs: last\n  system_prompt: Hi."),
        f"{FILE}:16:18: evaluation.system_prompt: differs from training.system_prompt\n"
        "  hint: training and evaluation must share the system prompt; remove this key "
        "to reuse the training one\n",
    )


def test_batch_size_too_big_for_the_site_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # della: 80 GiB A100; della.priors.yaml: 18.78 GiB peak at batch 32 for the 1B model.
    hint = (
        "  hint: use batch_size <= 95 for this model (per model: `batch_size: {MODEL: N, "
        "default: M}`)\n"
    )
    fails_with(
        tmp_path,
        capsys,
        P.replace("batch_size: 4", "batch_size: 128"),
        f"{FILE}:12:15: training.batch_size: batch size 128 for "
        "Llama-3.2-1B-Instruct_rank4 does not fit the site GPU (estimated maximum 95.4)\n"
        f"{hint}"
        f"{FILE}:12:15: training.batch_size: batch size 128 for "
        "Llama-3.2-1B-Instruct_rank64 does not fit the site GPU (estimated maximum 95.4)\n"
        f"{hint}",
    )


def test_batch_size_check_needs_the_priors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path)
    (root / "sites" / "della.priors.yaml").unlink()
    code, _, err = check(root, capsys, P.replace("batch_size: 4", "batch_size: 128"), "--write")
    assert code == 0, err  # no measured memory: nothing to compare with


def test_missing_eval_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails_with(
        tmp_path,
        capsys,
        P.replace("script: tasks/capitalization/eval.py", "script: tasks/nope/eval.py"),
        f"{FILE}:18:15: evaluation.tasks[0].script: tasks/nope/eval.py does not exist in "
        "the repository\n  hint: commit the task script, or fix the path\n",
    )


def test_dataset_missing_a_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    rows = [{"input": "abcd", "output": "ABCD"}] * 4
    (root / "tasks" / "nosplit.json").write_text(json.dumps({"train": rows, "test": rows}))
    text = P.replace("tasks/capitalization/input/words_4L_80P_1000.json", "tasks/nosplit.json")
    text = text.replace("  packed: false", "  packed: false\n  validation: true")
    code, _, err = check(root, capsys, text)
    assert code == 1
    assert err == (
        f"{FILE}:5:17: dataset.path: dataset tasks/nosplit.json lacks the split(s) "
        "validation\n  hint: regenerate it with train/validation/test splits\n" + FAILED
    )


def test_unknown_tool_lists_the_supported_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = P.replace(
        "controls: true", "controls: true\ntools: {preparation: axolotl, evaluation: lm-eval}"
    )
    fails_with(
        tmp_path,
        capsys,
        text,
        f"{FILE}:9:22: tools.preparation: unknown tool 'axolotl'\n"
        "  hint: supported: torchtune\n"
        f"{FILE}:9:43: tools.evaluation: unknown tool 'lm-eval'\n"
        "  hint: supported: inspect-ai\n",
    )


def test_unknown_site_lists_known_sites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails_with(
        tmp_path,
        capsys,
        P.replace("site: della", "site: cluster9"),
        f"{FILE}:3:7: site: no site file sites/cluster9.yaml\n  hint: known sites: della, local\n",
    )


def test_factor_not_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails_with(
        tmp_path,
        capsys,
        P.replace("lora_rank: [4, 64]", "lora_rank: [4, 64]\n  gpus: [1, 2]"),
        f"{FILE}:8:9: factors.gpus: 'gpus' cannot be a factor\n"
        "  hint: factors may be: model, dataset, epochs, learning_rate, batch_size, lora_rank, "
        "lora_dropout, weight_decay, packed, max_seq_len, validation, "
        "gradient_accumulation_steps, system_prompt, seed, warmup_steps, "
        "activation_checkpointing\n",
    )


def test_run_name_using_a_non_factor_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fails_with(
        tmp_path,
        capsys,
        P.replace("{model}_rank{lora_rank}", "{model}_rank{lora_rank}_lr{learning_rate}"),
        f"{FILE}:9:11: run_name: {{learning_rate}} is not a factor of this plan\n"
        "  hint: use the factors: {lora_rank}, {model}\n",
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("lora_rank: [4, 64]", "lora_rank: [four, 0]"),
            f"{FILE}:7:15: factors.lora_rank[0]: level 'four': Input should be a valid "
            "integer, unable to parse string as an integer\n"
            "  hint: each level must be a valid `training.lora_rank`\n"
            f"{FILE}:7:21: factors.lora_rank[1]: level 0: Input should be greater than 0\n"
            "  hint: each level must be a valid `training.lora_rank`\n",
        ),
        (
            ("lora_rank: [4, 64]", "lora_rank: [null]"),
            f"{FILE}:7:15: factors.lora_rank[0]: level None: Input should be a valid integer\n"
            "  hint: each level must be a valid `training.lora_rank`\n",
        ),
        (
            ('run_name: "{model}_rank{lora_rank}"', 'run_name: "{model"'),
            f"{FILE}:9:11: run_name: not a valid pattern: expected '}}' before end of string\n"
            "  hint: write factors as {name}, e.g. {model}_rank{lora_rank}; double braces for a "
            "literal\n",
        ),
        (
            ('run_name: "{model}_rank{lora_rank}"', 'run_name: "{model!z}{lora_rank}"'),
            f"{FILE}:9:11: run_name: not a valid pattern: {{model!z}}: only plain "
            "{factor} fields are allowed\n  hint: write factors as {name}, e.g. "
            "{model}_rank{lora_rank}; double braces for a literal\n",
        ),
        (
            ("script: tasks/capitalization/eval.py", "script: ../../etc/passwd"),
            f"{FILE}:18:15: evaluation.tasks[0].script: may not contain `..`: paths stay "
            "inside the repository or data_dir\n"
            "  hint: see `tunegit schema` for the expected form\n",
        ),
        (
            ("  epochs: 2", "  epochs: 1000000000"),
            f"{FILE}:11:11: training.epochs: Input should be less than or equal to 1000\n"
            "  hint: see `tunegit schema` for the expected form\n",
        ),
        (
            ("  batch_size: 4", "  batch_size: 4\n  learning_rate: .nan"),
            f"{FILE}:13:18: training.learning_rate: Input should be a finite number\n"
            "  hint: see `tunegit schema` for the expected form\n",
        ),
        (
            ("  batch_size: 4", "  batch_size: 4\n  gpus: 8"),
            f"{FILE}:13:9: training.gpus: 8 GPUs per job, but site 'della' has 4\n"
            "  hint: use gpus <= 4, or a site with more GPUs (sites/della.yaml)\n",
        ),
        (
            (
                "lora_rank: [4, 64]",
                "lora_rank: " + str(list(range(1, 101))) + "\n  seed: " + str(list(range(101))),
            ),
            f"{FILE}:7:3: factors: the factors make 10100 runs; the limit is 10000\n"
            "  hint: split the experiment, or use fewer levels\n",
        ),
    ],
)
def test_bad_plans_that_once_crashed_or_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], expected: str
) -> None:
    fails_with(tmp_path, capsys, minimal_plan("exp", edit), expected)


# --- resource checks ------------------------------------------------------------------------


def _local_site(root: Path, models_dir: str, executor: str = "local") -> None:
    (root / "sites" / "lab.yaml").write_text(
        f"executor: {executor}\nmodels_dir: {models_dir}\noutput_dir: out\n"
        "gpu: {type: cpu, memory_gib: 0, count: 1}\ndevice: cpu\ndtype: fp32\n"
    )


def test_models_dir_of_a_cluster_not_visible_is_not_verifiable_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path)
    _local_site(root, "/nonexistent/models", executor="slurm")
    code, _, err = check(root, capsys, P.replace("site: della", "site: lab"), "--write")
    assert code == 0, err
    assert "models" not in err
    log = (root / "experiments/exp/design-experiment.log").read_text()
    assert (
        "VERIFY_MODEL: Checking Llama-3.2-1B-Instruct\n"
        "Command: ls /nonexistent/models/Llama-3.2-1B-Instruct\n"
        "Result: not verifiable here\n"
    ) in log


@pytest.mark.parametrize("models_dir", ["/nonexistent/models", ".tunegit/models"],
                         ids=["absolute", "inside the repository, not made yet"])
def test_a_local_site_says_missing_never_not_verifiable_here(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], models_dir: str
) -> None:
    """Its jobs run on this machine: a models_dir not here is a model that is missing."""
    root = make_repo(tmp_path)
    _local_site(root, models_dir)
    code, _, err = check(root, capsys, P.replace("site: della", "site: lab"), "--write")
    assert code == 0, err
    assert f"model directory {models_dir}/Llama-3.2-1B-Instruct is missing" in err
    log = (root / "experiments/exp/design-experiment.log").read_text()
    assert (
        "VERIFY_MODEL: Checking Llama-3.2-1B-Instruct\n"
        f"Command: ls {models_dir}/Llama-3.2-1B-Instruct\n"
        "Result: missing\n"
    ) in log


def test_visible_models_dir_with_a_missing_model_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path)
    (root / "models").mkdir()
    _local_site(root, "models")
    code, _, err = check(root, capsys, P.replace("site: della", "site: lab"), "--write")
    assert code == 0, err
    assert err == (
        f"warning: {FILE}:4:10: models[0]: model directory "
        "models/Llama-3.2-1B-Instruct is missing\n"
        "  hint: download it (or `tunegit tiny-model` for the demo) before "
        "`tunegit run`\n"
    )


def test_present_model_is_verified(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    model = root / "models" / "Llama-3.2-1B-Instruct"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    _local_site(root, "models")
    code, _, err = check(root, capsys, P.replace("site: della", "site: lab"), "--write")
    assert code == 0
    assert err == ""
    log = (root / "experiments/exp/design-experiment.log").read_text()
    assert "Result: directory exists with 1 files\n" in log


def test_no_controls_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = check(
        tmp_path, capsys, P.replace("controls: true", "controls: false"), "--write"
    )
    assert code == 0
    assert err == (
        f"warning: {FILE}:8:11: controls: no base-model controls\n"
        "  hint: set `controls: true` to measure the effect of fine-tuning\n"
    )
