"""`tunegit check` and `tunegit schema` as the pre-commit hook and CI run them, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from planfixtures import (
    DEMO,
    EXAMPLE_8L,
    EXAMPLE_SWEEP,
    REPO,
    make_repo,
    run_cli,
    weightless_model,
)

EXP = f"experiments/{EXAMPLE_8L}"
FIX = f"  hint: run `tunegit check --write {EXP}` and commit the result\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", experiments=(EXAMPLE_8L, EXAMPLE_SWEEP))


def test_missing_renderings_fail_with_the_write_fix(repo: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, repo, "check", EXP)
    assert code == 1
    assert out == ""
    assert err == (f"{EXP}/runs_plan.md: is missing\n{FIX}"
                   f"{EXP}/runs_status.yaml: is missing\n{FIX}"
                   "1 of 1 experiment(s) failed the check\n")


def test_write_then_check_passes(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, repo, "check", "--write", EXP)
    assert code == 0, err
    assert out.splitlines()[:3] == [f"wrote {EXP}/runs_plan.md", f"wrote {EXP}/runs_status.yaml",
                                    f"wrote {EXP}/design-experiment.log"]
    code, out, err = run_cli(capsys, repo, "check", EXP)
    assert code == 0, err
    assert out == (f"{EXP}/experiment.yaml: ok: 6 runs, 11 evaluations, 0.68 GPU-h, 39.2 GiB\n")
    assert err == ""


def test_stale_rendering_fails(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, repo, "check", "--write", EXP)[0] == 0
    plan = repo / EXP / "experiment.yaml"
    plan.write_text(plan.read_text().replace("learning_rate: 3.0e-4", "learning_rate: 1.0e-4"))
    code, _, err = run_cli(capsys, repo, "check", EXP)
    assert code == 1
    assert err == (f"{EXP}/runs_plan.md: is stale (the plan changed since it was rendered)\n"
                   f"{FIX}1 of 1 experiment(s) failed the check\n")


def test_hand_edited_runs_plan_md_is_stale(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, repo, "check", "--write", EXP)[0] == 0
    (repo / EXP / "runs_plan.md").write_bytes(b"\xff\xfe not even text")
    code, _, err = run_cli(capsys, repo, "check", EXP)
    assert code == 1
    assert err.startswith(f"{EXP}/runs_plan.md: is stale")


def test_a_new_run_makes_the_status_file_lack_it(repo: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, repo, "check", "--write", EXP)[0] == 0
    plan = repo / EXP / "experiment.yaml"
    plan.write_text(plan.read_text().replace("lora_rank: [4, 64]", "lora_rank: [4, 64, 128]"))
    code, _, err = run_cli(capsys, repo, "check", EXP)
    assert code == 1
    assert f"{EXP}/runs_status.yaml: lacks runs or evaluations the plan now has\n{FIX}" in err
    assert run_cli(capsys, repo, "check", "--write", EXP)[0] == 0
    status = yaml.safe_load((repo / EXP / "runs_status.yaml").read_text())
    assert "Llama-3.2-3B-Instruct_rank128" in status["runs"]


def test_write_twice_changes_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, repo, "check", "--write", EXP)[0] == 0
    files = [repo / EXP / n for n in ("runs_plan.md", "runs_status.yaml",
                                      "design-experiment.log")]
    before = [(f.read_bytes(), f.stat().st_mtime_ns) for f in files]
    code, out, _ = run_cli(capsys, repo, "check", "--write", EXP)
    assert code == 0
    assert "wrote" not in out
    assert [(f.read_bytes(), f.stat().st_mtime_ns) for f in files] == before


def test_runs_status_initial_content(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, repo, "check", "--write", EXP)[0] == 0
    written = (repo / EXP / "runs_status.yaml").read_text()
    assert written == (REPO / EXP / "runs_status.yaml").read_text()
    data = yaml.safe_load(written)
    steps = [(run, key, step) for run, rec in data["runs"].items()
             for key, step in [("finetune", rec["finetune"]), *rec["evaluations"].items()]]
    for run, key, step in steps:
        expected = "skipped" if run.endswith("_base") and key == "finetune" else "pending"
        assert step["status"] == expected, (run, key)
    assert data["runs"]["Llama-3.2-3B-Instruct_base"]["finetune"]["note"] == \
        "Base model - no fine-tuning required"


@pytest.mark.parametrize("how", ["dir", "plan", "name", "rendered"])
def test_check_accepts_a_dir_a_plan_file_a_name_or_a_rendered_file(
        repo: Path, capsys: pytest.CaptureFixture[str], how: str) -> None:
    assert run_cli(capsys, repo, "check", "--write", EXP)[0] == 0
    arg = {"dir": EXP, "plan": f"{EXP}/experiment.yaml", "name": EXAMPLE_8L,
           "rendered": f"{EXP}/runs_plan.md"}[how]
    code, out, _ = run_cli(capsys, repo, "check", arg)
    assert code == 0
    assert out.startswith(f"{EXP}/experiment.yaml: ok: 6 runs")


def test_check_the_whole_repository(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, repo, "check", "--write")
    assert code == 0
    for arg in ((), (str(repo),)):
        code, out, err = run_cli(capsys, repo, "check", *arg)
        assert code == 0, err
        assert [line.split(":")[0] for line in out.splitlines()] == [
            f"experiments/{EXAMPLE_SWEEP}/experiment.yaml", f"{EXP}/experiment.yaml"]


def test_one_bad_experiment_fails_the_repository_but_all_are_checked(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, repo, "check", "--write")[0] == 0
    (repo / "experiments" / EXAMPLE_SWEEP / "experiment.yaml").write_text("name: [\n")
    code, out, err = run_cli(capsys, repo, "check")
    assert code == 1
    assert out.startswith(f"{EXP}/experiment.yaml: ok")
    assert err.endswith("1 of 2 experiment(s) failed the check\n")


def test_relative_paths_are_relative_to_dash_c(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # The checkout has the same relative path: -C must win over the process's cwd.
    repo = make_repo(tmp_path, experiments=(DEMO,))
    weightless_model(repo)  # its model is there: the only problem is the missing plan doc
    code, _, err = run_cli(capsys, repo, "check", f"experiments/{DEMO}")
    assert code == 1
    assert err.startswith(f"experiments/{DEMO}/runs_plan.md: is missing\n")


def test_no_experiments_yet_checks_the_sites_and_passes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A lab's first commit has sites and no experiment: the site hook must pass on it."""
    repo = make_repo(tmp_path)
    code, out, err = run_cli(capsys, repo, "check")
    assert (code, err) == (0, "")
    assert out == ("no experiments yet (sites checked: della, local); `tunegit new NAME` starts "
                   "one\n")
    assert run_cli(capsys, repo, "check", "--quiet")[:2] == (0, "")


def test_no_experiments_yet_and_a_bad_site_fails_at_its_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    site = repo / "sites" / "local.yaml"
    site.write_text(site.read_text().replace("max_parallel: 2", "max_parallel: two"))
    code, _, err = run_cli(capsys, repo, "check", "--quiet")
    assert code == 1
    assert err.startswith("sites/local.yaml:9:15: max_parallel: Input should be a valid integer")


def test_new_writes_a_skeleton_that_checks(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path)
    code, out, _ = run_cli(capsys, root, "new", "cap_demo_2025-01-01")
    assert code == 0
    assert out.startswith("wrote experiments/cap_demo_2025-01-01/experiment.yaml\n")
    code, _, err = run_cli(capsys, root, "check", "--write", "cap_demo_2025-01-01")
    assert code == 0, err
    code, _, err = run_cli(capsys, root, "new", "cap_demo_2025-01-01")
    assert (code, err) == (1, "error: experiments/cap_demo_2025-01-01/experiment.yaml already "
                              "exists\nhint: edit it, or choose another name\n")
    code, _, err = run_cli(capsys, root, "new", "../evil")
    assert (code, err) == (1, "error: invalid experiment name '../evil'\nhint: use letters, "
                              "digits, '.', '_' and '-', e.g. cap_8L_lora_2025-10-22\n")


@pytest.mark.parametrize("which", ["plan", "site"])
def test_schema_is_json_schema(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                               which: str) -> None:
    code, out, _ = run_cli(capsys, make_repo(tmp_path), "schema", which)
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    required = {"plan": {"name", "question", "models", "dataset", "evaluation"},
                "site": {"models_dir", "output_dir"}}[which]
    assert set(schema["required"]) == required


def test_examples_validate_against_the_schema(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    root = make_repo(tmp_path)
    for which, files in (("plan", sorted(REPO.glob("experiments/*/experiment.yaml"))),
                         ("site", [REPO / "sites" / "della.yaml", REPO / "sites" / "local.yaml"])):
        code, out, _ = run_cli(capsys, root, "schema", which)
        assert code == 0
        schema = json.loads(out)
        jsonschema.Draft202012Validator.check_schema(schema)
        for path in files:
            jsonschema.validate(yaml.safe_load(path.read_text()), schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"unknown_key": 1}, schema)
