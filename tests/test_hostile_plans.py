"""Hostile or broken plans and sites: never a traceback, never a write outside the
experiment's directories, never a command the plan does not declare.

- YAML bombs: `!!python/object` tags, billion-laughs aliases, huge files: exit 1, located.
- Shell metacharacters and newlines in every string field of the plan and of the site:
  `check` either refuses the value (exit 1, file:line:col and field) or the rendered
  scripts pass `bash -n` and, run for real in a sandbox whose `tune`, `inspect`, `python3`
  and `module` are recorders, create no canary file and run exactly the declared commands.
- Paths out of their roots (`..`, absolute, symlinks): refused with the field named.
- Property-based fuzzing (hypothesis) of string fields: exit 0 or 1, never 3; every error
  line located; every accepted plan renders scripts that parse.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitfixtures import REPO
from planfixtures import tiny_plan
from tunegit.cli import main

BASE = yaml.safe_load(tiny_plan("exp"))
LOCATED = re.compile(r"^((warning: )?(experiments/exp|sites)/[^:\n]*(:\d+(:\d+)?)?: .+"
                     r"|  hint: .*|\d+ of \d+ experiment\(s\) failed the check|error: .+)$")
DECLARED = {"tune", "inspect", "python3", "module"}


# --- the sandbox -------------------------------------------------------------------------------

class Sandbox:
    """A repository in tmp/sandbox/repo; recorders for the programs jobs may run."""

    def __init__(self, root: Path):
        self.root = root
        self.repo = root / "repo"
        self.canary = root / "CANARY"
        self.calls = root / "calls.jsonl"
        self.bin = root / "bin"
        for rel in ("sites/local.yaml", "tasks/capitalization/eval.py",
                    "tasks/capitalization/input/words_5L_80P_200.json"):
            (self.repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / rel, self.repo / rel)
        self.site = (self.repo / "sites/local.yaml").read_text()
        self.bin.mkdir()
        for program in DECLARED:
            recorder = self.bin / program
            recorder.write_text(
                "#!/usr/bin/python3\nimport json, os, sys\n"
                f"open({str(self.calls)!r}, 'a').write(json.dumps("
                "[os.path.basename(sys.argv[0])] + sys.argv[1:]) + '\\n')\n")
            recorder.chmod(0o755)

    def payload(self, template: str) -> str:
        return template.replace("CANARY", str(self.canary))

    def write(self, plan: dict[str, Any] | str, site: str | None = None) -> None:
        path = self.repo / "experiments/exp/experiment.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(plan if isinstance(plan, str) else yaml.safe_dump(plan))
        (self.repo / "sites/local.yaml").write_text(site if site is not None else self.site)

    def tunegit(self, *argv: str) -> tuple[int, str]:
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(["-C", str(self.repo), *argv])
        return rc, err.getvalue()

    def files(self) -> set[Path]:
        return {p for p in self.root.rglob("*") if p.is_file() or p.is_symlink()}

    def scripts(self) -> list[Path]:
        work = self.repo / ".tunegit/outputs/exp"
        return sorted(p for p in work.rglob("*") if p.suffix in (".slurm", ".sh"))

    def run_script(self, script: Path) -> list[list[str]]:
        """Run a rendered job script for real; the recorders stand in for the tools."""
        self.calls.unlink(missing_ok=True)
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "HOME": str(self.root),
               "SLURM_JOB_ID": "1"}
        subprocess.run(["bash", str(script)], cwd=self.root, env=env, capture_output=True,
                       timeout=30, check=False)
        text = self.calls.read_text() if self.calls.exists() else ""
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "sandbox")


def assert_located(err: str) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "exit 1 without a message"
    bad = [line for line in lines if not LOCATED.match(line)]
    assert not bad, bad


def check_and_render(box: Sandbox) -> bool:
    """`check --write` then `scaffold`: exit 0 or 1, located; True when both accepted."""
    rc, err = box.tunegit("check", "--write", "-q", "experiments/exp")
    assert rc in (0, 1), (rc, err)
    if rc == 1:
        assert_located(err)
        return False
    before = box.files()
    rc, err = box.tunegit("scaffold", "exp")
    assert rc in (0, 1), (rc, err)
    if rc == 1:
        assert "Traceback" not in err and "internal error" not in err, err
        return False
    work = box.repo / ".tunegit/outputs/exp"
    outside = [p for p in box.files() - before if not p.resolve().is_relative_to(work)]
    assert not outside, f"written outside the experiment's work dir: {outside}"
    return True


def assert_scripts_safe(box: Sandbox) -> None:
    scripts = box.scripts()
    assert scripts
    for script in scripts:
        parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert parsed.returncode == 0, (script, parsed.stderr)
        if script.name == "submit_all.sh":
            continue  # calls sbatch: its parse is checked; the job scripts are run below
        calls = box.run_script(script)
        assert not box.canary.exists(), f"{script.name} ran an injected command"
        assert {c[0] for c in calls} <= DECLARED, calls
        assert calls, f"{script.name} ran nothing"
        if script.name == "finetune.slurm":
            assert calls[-1] == ["tune", "run", "lora_finetune_single_device", "--config",
                                 "finetune.yaml"], calls


# --- YAML bombs ---------------------------------------------------------------------------------

BOMBS = {
    "python-object": "name: !!python/object/apply:os.system ['touch CANARY']\n",
    "python-name": "name: !!python/name:os.system\n",
    "custom-tag": "name: !evil x\n",
    "binary": "name: !!binary aGVsbG8=\n",
    "billion-laughs": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)),
    "deep": "name: " + "[" * 5000 + "]" * 5000 + "\n",
    "huge": "question: '" + "x" * (3 * 1024 * 1024) + "'\n",
    "nul": "name: exp\x00\n",
    "not-utf8": "name: \xff\xfe\n",
    "duplicate-key": "name: exp\nname: exp2\n",
    "merge-key": "base: &b {name: exp}\n<<: *b\n",
}


@pytest.mark.parametrize("case", sorted(BOMBS))
def test_yaml_bombs_are_located_errors(box: Sandbox, case: str) -> None:
    text = box.payload(BOMBS[case])
    path = box.repo / "experiments/exp/experiment.yaml"
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("latin-1") if case == "not-utf8" else text.encode())
    rc, err = box.tunegit("check", "-q", "experiments/exp")
    assert rc == 1, err
    assert_located(err)
    assert "experiments/exp/experiment.yaml" in err
    assert not box.canary.exists()


# --- shell metacharacters in every string field -------------------------------------------------

PAYLOADS = ["$(touch CANARY)", "`touch CANARY`", "x; touch CANARY", "x\ntouch CANARY\n",
            "' ; touch CANARY ; '", '" ; touch CANARY ; "', "x && touch CANARY #",
            "x | touch CANARY", "${IFS}touch${IFS}CANARY", "x\\\ntouch CANARY", "x\rtouch CANARY",
            "{{ 7 * 7 }}{% raw %}", "-o/tmp/x --wrap='touch CANARY'"]


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data))
    node: Any = out
    for part in path[:-1]:
        node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
    node[path[-1]] = value
    return out


PLAN_FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "question": lambda v: _set(BASE, ("question",), v),
    "notes": lambda v: _set(BASE, ("notes",), v),
    "author": lambda v: _set(BASE, ("author",), v),
    "training.system_prompt": lambda v: _set(BASE, ("training", "system_prompt"), v),
    "evaluation.system_prompt": lambda v: _set(BASE, ("evaluation", "system_prompt"), v),
    "task.description": lambda v: _set(BASE, ("evaluation", "tasks", 0, "description"), v),
    "task.task": lambda v: _set(BASE, ("evaluation", "tasks", 0, "task"), v),
    "task.split": lambda v: _set(BASE, ("evaluation", "tasks", 0, "split"), v),
    "task.name": lambda v: _set(BASE, ("evaluation", "tasks", 0, "name"), v),
    "task.script": lambda v: _set(BASE, ("evaluation", "tasks", 0, "script"), v),
    "task.dataset": lambda v: _set(BASE, ("evaluation", "tasks", 0, "dataset"), v),
    "dataset.path": lambda v: _set(BASE, ("dataset", "path"), v),
    "dataset.label": lambda v: _set(BASE, ("dataset", "label"), v),
    "run_name literal": lambda v: _set(BASE, ("run_name",), v + "_{lora_rank}"),
    "models[0]": lambda v: _set(BASE, ("models",), [v]),
    "factor level": lambda v: _set(_set(BASE, ("factors", "system_prompt"), [v]), ("run_name",),
                                   "r{lora_rank}"),
    "name": lambda v: _set(BASE, ("name",), v),
    "site": lambda v: _set(BASE, ("site",), v),
}

SITE_FIELDS = {
    "environment.activate": "environment: {{activate: {v}}}",
    "environment.modules": "environment: {{modules: [{v}]}}",
    "environment.variables": "environment: {{variables: {{X: {v}}}}}",
    "slurm.extra_sbatch": "slurm: {{extra_sbatch: [{v}]}}",
    "slurm.partition": "slurm: {{partition: {v}}}",
    "slurm.account": "slurm: {{account: {v}}}",
    "slurm.qos": "slurm: {{qos: {v}}}",
    "slurm.constraint": "slurm: {{constraint: {v}}}",
    "output_dir": "output_dir: {v}",
    "models_dir": "models_dir: {v}",
}


@pytest.mark.slow
@pytest.mark.parametrize("field", sorted(PLAN_FIELDS))
def test_shell_metacharacters_in_plan_fields(box: Sandbox, field: str) -> None:
    accepted = 0
    for template in PAYLOADS:
        box.write(PLAN_FIELDS[field](box.payload(template)))
        if check_and_render(box):
            accepted += 1
            assert_scripts_safe(box)
        shutil.rmtree(box.repo / ".tunegit", ignore_errors=True)
    assert not box.canary.exists()


def _site_with(field: str, value: str) -> str:
    """The local site with one field replaced (a flow-style line, quoted as JSON)."""
    site = yaml.safe_load((REPO / "sites/local.yaml").read_text())
    extra = yaml.safe_load(SITE_FIELDS[field].format(v=json.dumps(value)))
    for key, sub in extra.items():
        site[key] = {**site.get(key, {}), **sub} if isinstance(sub, dict) else sub
    return yaml.safe_dump(site)


@pytest.mark.slow
@pytest.mark.parametrize("field", sorted(SITE_FIELDS))
def test_shell_metacharacters_in_site_fields(box: Sandbox, field: str) -> None:
    """`activate` is a shell line by design (the site is reviewed configuration): only its
    being one line is checked; every other site value is data."""
    for template in PAYLOADS:
        if field == "environment.activate" and "\n" not in template and "\r" not in template:
            continue
        box.write(BASE, _site_with(field, box.payload(template)))
        if check_and_render(box):
            assert_scripts_safe(box)
        shutil.rmtree(box.repo / ".tunegit", ignore_errors=True)
        shutil.rmtree(box.root / "repo" / ".tunegit", ignore_errors=True)
    assert not box.canary.exists()


# --- paths out of their roots -------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "message"), [
    ("dataset.path", "../../etc/passwd", "may not contain `..`"),
    ("dataset.path", "tasks/../../../etc/passwd", "may not contain `..`"),
    ("task.script", "../../etc/passwd", "may not contain `..`"),
    ("task.script", "/etc/passwd", "must be relative to the repository root"),
    ("task.script", ".git/hooks/eval.py", "may not point into .git/"),
    ("task.script", "tasks/.git/eval.py", "may not point into .git/"),
    ("task.script", "tasks/evil/eval.py", "resolves outside the repository (to /etc/passwd)"),
    ("task.script", "tasks/etclink/passwd", "resolves outside the repository (to /etc/passwd)"),
    ("dataset.path", "tasks/evil/data.json", "resolves outside the repository and data_dir"),
    ("run_name literal", "..", "starts with '.'"),
    ("name", "..", "name: may only contain letters, digits"),
    ("task.name", "..", "evaluation.tasks[0].name: may only contain"),
])
def test_paths_that_escape_their_root_are_refused(box: Sandbox, field: str, value: str,
                                                  message: str) -> None:
    evil = box.repo / "tasks/evil"
    evil.mkdir(parents=True)
    (evil / "eval.py").symlink_to("/etc/passwd")
    outside = box.root / "outside.json"
    shutil.copy(REPO / "tasks/capitalization/input/words_5L_80P_200.json", outside)
    (evil / "data.json").symlink_to(outside)
    (box.repo / "tasks/etclink").symlink_to("/etc")
    plan = PLAN_FIELDS[field](value)
    if field == "run_name literal":
        plan = _set(BASE, ("run_name",), value)
    box.write(plan)
    rc, err = box.tunegit("check", "--write", "-q", "experiments/exp")
    assert rc == 1, err
    assert_located(err)
    assert message in err, err
    assert not (box.repo / ".tunegit").exists()


def test_plans_and_sites_committed_as_symbolic_links_are_never_run(box: Sandbox) -> None:
    """A link could point anywhere, and what it points to was never reviewed: an experiment
    directory, a plan or a site file that is a symbolic link is refused by name, and nothing
    is written where it points."""
    box.write(BASE)
    outside = box.root / "outside"
    (outside / "evil").mkdir(parents=True)
    (outside / "evil" / "experiment.yaml").write_text(
        yaml.safe_dump({**BASE, "name": "evil"}))
    (box.repo / "experiments" / "evil").symlink_to(outside / "evil")
    (outside / "site.yaml").write_text((box.repo / "sites/local.yaml").read_text())
    (box.repo / "sites" / "linked.yaml").symlink_to(outside / "site.yaml")
    before = sorted(outside.rglob("*"))
    rc, err = box.tunegit("check")
    assert rc == 1 and "experiments/evil: a symbolic link" in err, err
    assert "sites/linked.yaml: a symbolic link" in err, err
    for argv in (("check", "experiments/evil"), ("scaffold", "evil"), ("run", "evil")):
        rc, err = box.tunegit(*argv)
        assert rc == 1 and "experiments/evil is a symbolic link" in err, (argv, err)
        assert "Traceback" not in err
    box.write({**BASE, "site": "linked"})
    rc, err = box.tunegit("check", "experiments/exp")
    assert rc == 1 and "sites/linked.yaml is a symbolic link" in err, err
    assert sorted(outside.rglob("*")) == before
    assert not box.canary.exists()


# --- property-based fuzzing -----------------------------------------------------------------

HOSTILE = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from(list("$`;|&<>(){}[]'\"\\\n\r\t *?!#~=%-./")) |
            st.characters(), max_size=40),
    st.sampled_from(PAYLOADS),
    st.builds(lambda a, b: a + b, st.sampled_from(PAYLOADS), st.text(max_size=8)),
)
FIELD = st.sampled_from(sorted(PLAN_FIELDS))


def _fuzz_once(root: Path, field: str, value: str) -> None:
    box = Sandbox(root)
    box.write(PLAN_FIELDS[field](box.payload(value)))
    if check_and_render(box):
        for script in box.scripts():
            parsed = subprocess.run(["bash", "-n", str(script)], capture_output=True)
            assert parsed.returncode == 0, (field, value, script)
    assert not box.canary.exists()


@pytest.mark.slow
@settings(max_examples=2000, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=FIELD, value=HOSTILE)
def test_fuzz_string_fields(tmp_path: Path, field: str, value: str) -> None:
    root = tmp_path / f"f{abs(hash((field, value)))}"
    try:
        _fuzz_once(root, field, value)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(field=FIELD, value=HOSTILE)
def test_fuzz_string_fields_quick(tmp_path: Path, field: str, value: str) -> None:
    root = tmp_path / f"q{abs(hash((field, value)))}"
    try:
        _fuzz_once(root, field, value)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_sandbox_detects_an_injection(box: Sandbox) -> None:
    """The canary and the recorders work: an unquoted value in a script is caught."""
    script = box.root / "bad.slurm"
    script.write_text(f"#!/bin/bash\necho {box.payload('$(touch CANARY)')}\ntune run x\n")
    calls = box.run_script(script)
    assert box.canary.exists() and calls == [["tune", "run", "x"]]
    _ = os.environ  # the sandbox runs with its own minimal environment
