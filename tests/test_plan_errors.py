"""Schema errors in plans, sites and priors: compiler-style, all in one pass, with the way out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from planfixtures import make_repo, minimal_plan, run_cli, write_plan

FILE = "experiments/exp/experiment.yaml"
FAILED = "1 of 1 experiment(s) failed the check\n"
P = minimal_plan("exp")
PLAN_KEYS = ("name, type, question, site, tools, models, dataset, factors, controls, run_name, "
             "training, evaluation, time_limits, notes, author")
LOCATED = re.compile(r"^[^\s:][^:]*(:\d+(:\d+)?)?: ")


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    root = tmp_path if (tmp_path / "sites").is_dir() else make_repo(tmp_path)
    write_plan(root, "exp", text)
    code, out, err = run_cli(capsys, root, "check", "experiments/exp")
    assert "Traceback" not in out + err
    for line in err.splitlines():
        assert line.startswith("  hint: ") or LOCATED.match(line) or line == FAILED.strip(), line
    return code, err


def test_unknown_keys_list_the_valid_ones_and_all_errors_come_in_one_pass(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = P.replace("controls: true", "controls: true\nfoo: 1").replace(
        "  epochs: 2", "  epochs: two\n  colour: red")
    code, err = check(tmp_path, capsys, text)
    assert code == 1
    assert err == (
        f"{FILE}:9:1: foo: unknown key 'foo'\n  hint: valid keys here are: {PLAN_KEYS}\n"
        f"{FILE}:12:11: training.epochs: Input should be a valid integer, unable to parse "
        "string as an integer\n  hint: write a number without quotes\n"
        f"{FILE}:13:3: training.colour: unknown key 'colour'\n  hint: valid keys here are: "
        "epochs, learning_rate, batch_size, lora_rank, lora_dropout, weight_decay, packed, "
        "max_seq_len, validation, gpus, gradient_accumulation_steps, system_prompt, seed, "
        f"max_steps_per_epoch, warmup_steps, activation_checkpointing\n{FAILED}")


def test_missing_required_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, capsys, P.replace("question: Does rank matter?\n", ""))
    assert code == 1
    assert err == (f"{FILE}:1:1: question: required key is missing\n"
                   f"  hint: add `question:` (see `tunegit schema`)\n{FAILED}")


@pytest.mark.parametrize(("edit", "expected"), [
    (("controls: true", "controls: maybe"),
     f"{FILE}:8:11: controls: Input should be a valid boolean, unable to interpret input\n"
     "  hint: write true or false\n"),
    (("training:\n  epochs: 2\n  batch_size: 4\n  packed: false\n", "training: 5\n"),
     f"{FILE}:10:11: training: Input should be a mapping of keys\n"
     "  hint: write a mapping of keys\n"),
    (("models: [meta-llama/Llama-3.2-1B-Instruct]", "models: meta-llama/Llama-3.2-1B-Instruct"),
     f"{FILE}:4:9: models: Input should be a valid list\n  hint: write a list, e.g. [a, b]\n"),
    (("question: Does rank matter?", "question: 2024-01-01"),
     f"{FILE}:2:11: question: Input should be a valid string\n  hint: quote the value\n"),
    (("  epochs: last", "  epochs: sometimes"),
     f"{FILE}:15:11: evaluation.epochs: Input should be 'last', 'first', 'all' or 'best', or "
     "input should be a valid list\n  hint: use one of: 'last', 'first', 'all' or 'best'\n"),
    (("name: exp", "name: exp/../x"),
     f"{FILE}:1:7: name: may only contain letters, digits, '.', '_' and '-'\n"
     "  hint: e.g. cap_8L_lora_comparison_2025-10-22\n"),
    (("controls: true", "controls: true\n1: x"),
     f"{FILE}:9:1: 1: unknown key '1'\n  hint: valid keys here are: {PLAN_KEYS}\n"),
    (("tasks/capitalization/input/words_4L_80P_1000.json", '""'),
     f"{FILE}:5:17: dataset.path: String should have at least 1 character\n"
     "  hint: see `tunegit schema` for the expected form\n"),
])
def test_wrong_types(tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str],
                     expected: str) -> None:
    code, err = check(tmp_path, capsys, minimal_plan("exp", edit))
    assert code == 1
    assert err == expected + FAILED


def test_name_must_match_the_directory(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, capsys, minimal_plan("other"))
    assert code == 1
    assert err == (f"{FILE}:1:7: name: does not match the directory name 'exp'\n"
                   f"  hint: rename the directory or set `name: exp`\n{FAILED}")


@pytest.mark.parametrize(("site", "expected"), [
    ("executor: [\n", "sites/della.yaml:2:1: YAML syntax error: expected the node content, but "
     "found '<stream end>'\n  hint: check indentation and quoting near this line; quote values "
     "containing ': ' or '#'\n"),
    ("models_dir: m\noutput_dir: o\ngpu: {type: A100, memory: 80}\n",
     "sites/della.yaml:3:19: gpu.memory: unknown key 'memory'\n"
     "  hint: valid keys here are: type, memory_gib, count, gres_type\n"),
    ("output_dir: o\n", "sites/della.yaml:1:1: models_dir: required key is missing\n"
     "  hint: add `models_dir:` (see `tunegit schema`)\n"),
])
def test_site_file_errors_are_located_in_the_site_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], site: str, expected: str) -> None:
    root = make_repo(tmp_path)
    (root / "sites" / "della.yaml").write_text(site)
    code, err = check(root, capsys, P)
    assert code == 1
    assert err == expected + FAILED


def test_priors_file_errors_are_located(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    (root / "sites" / "della.priors.yaml").write_text(
        "runs:\n  - model: Llama-3.2-1B-Instruct\n    it_per_s: fast\n    batch_size: 0\n")
    code, err = check(root, capsys, P)
    assert code == 1
    assert err == (
        "sites/della.priors.yaml:3:15: runs[0].it_per_s: Input should be a valid number, unable "
        "to parse string as a number\n  hint: write a number without quotes\n"
        "sites/della.priors.yaml:4:17: runs[0].batch_size: Input should be greater than 0\n"
        f"  hint: see `tunegit schema` for the expected form\n{FAILED}")


def test_empty_priors_file_means_no_priors(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    (root / "sites" / "della.priors.yaml").write_text("# nothing measured yet\n")
    write_plan(root, "exp", P)
    code, _, err = run_cli(capsys, root, "check", "--write", "experiments/exp")
    assert code == 0, err


def test_malformed_status_of_another_experiment_is_ignored_for_priors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    other = root / "experiments" / "other"
    other.mkdir(parents=True)
    (other / "runs_status.yaml").write_text(
        "runs:\n  r:\n    finetune: {status: completed, metrics: {it_per_s: x}, "
        "config: {model: m}}\n  s: [1]\n")
    write_plan(root, "exp", P)
    code, _, err = run_cli(capsys, root, "check", "--write", "experiments/exp")
    assert code == 0, err


@pytest.mark.parametrize(("edit", "expected"), [
    (("  packed: false", "  packed: false\n  seed: 0777"),
     f"{FILE}:14:9: training.seed: 0777 has a leading zero, which YAML reads as the octal "
     "number 511\n  hint: write the number without the leading zero (777), or quote it "
     "(\"0777\") if it is text\n"),
    (("lora_rank: [4, 64]", "lora_rank: [4, 064]"),
     f"{FILE}:7:18: factors.lora_rank[1]: 064 has a leading zero, which YAML reads as the "
     "octal number 52\n  hint: write the number without the leading zero (64), or quote it "
     "(\"064\") if it is text\n"),
    (("  packed: false", "  packed: false\n  seed: 1:30"),
     f"{FILE}:14:9: training.seed: 1:30 is a YAML 1.1 base-60 number (read as 90)\n"
     "  hint: write the number in decimal, or quote it (\"1:30\") if it is text\n"),
])
def test_integers_yaml_would_silently_change_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str],
        expected: str) -> None:
    code, err = check(tmp_path, capsys, minimal_plan("exp", edit))
    assert code == 1
    assert err == expected + FAILED


@pytest.mark.parametrize(("edit", "expected"), [
    (("lora_rank: [4, 64]", "lora_rank: [4, 99999999999999999999999]"),
     f"{FILE}:7:18: factors.lora_rank[1]: level 99999999999999999999999: Input should be less "
     "than or equal to 4096\n  hint: each level must be a valid `training.lora_rank`\n"),
    (("  batch_size: 4", "  batch_size: 4\n  lora_rank: 99999999999999999999999"),
     f"{FILE}:13:14: training.lora_rank: Input should be less than or equal to 4096\n"
     "  hint: see `tunegit schema` for the expected form\n"),
    (("  packed: false", "  packed: false\n  seed: -1"),
     f"{FILE}:14:9: training.seed: Input should be greater than or equal to 0\n"
     "  hint: see `tunegit schema` for the expected form\n"),
    (("  packed: false", "  packed: false\n  max_seq_len: 100000000000"),
     f"{FILE}:14:16: training.max_seq_len: Input should be less than or equal to 1048576\n"
     "  hint: see `tunegit schema` for the expected form\n"),
])
def test_integers_are_bounded_to_sane_maxima(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str],
        expected: str) -> None:
    code, err = check(tmp_path, capsys, minimal_plan("exp", edit))
    assert code == 1
    assert err == expected + FAILED


def test_two_experiments_whose_names_differ_only_by_case_are_refused_naming_both(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    write_plan(root, "Case", minimal_plan("Case"))
    write_plan(root, "case", minimal_plan("case"))
    code, _, err = run_cli(capsys, root, "check", "experiments/case")
    assert code == 1
    assert err == (
        "experiments/case/experiment.yaml:1:7: name: 'case' differs only by case from the "
        "experiment in experiments/Case/experiment.yaml\n"
        "  hint: rename one of them: on a case-insensitive filesystem (macOS, Windows) they are "
        "one directory, and their jobs and outputs would mix\n"
        "1 of 1 experiment(s) failed the check\n")
    code, _, err = run_cli(capsys, root, "check")
    assert code == 1
    assert "experiments/Case/experiment.yaml:1:7: name: 'Case' differs only by case from the " \
        "experiment in experiments/case/experiment.yaml\n" in err
    assert "2 of 2 experiment(s) failed the check\n" in err
