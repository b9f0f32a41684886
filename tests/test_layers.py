"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and can fail.

The layout is the pipeline (spec -> core -> render -> plug-ins -> edges -> loop -> commands ->
cli); `lint-imports` checks that each layer imports only the layers below it and that the
core stays pure. The second test breaks a temporary copy of the package to show that a
wrong import is caught, so a contract that silently checks nothing cannot pass here.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "automation" / "tunegit"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("importlinter") is None or not LINT_IMPORTS.is_file(),
    reason="needs import-linter (the dev extra)")


def lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_package_keeps_its_import_contracts() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "reported"), [
    ("core/reconcile.py", "import tunegit.edges.workspace", "tunegit.edges.workspace"),
    ("core/expand.py", "import subprocess", "subprocess"),
    ("tools/base.py", "import tunegit.executors.base", "tunegit.executors.base"),
    ("render/templating.py", "import tunegit.files", "tunegit.files"),
], ids=["core imports an edge", "core runs a subprocess", "a tool imports an executor",
        "rendering writes files"])
def test_a_wrong_import_in_a_copy_of_the_package_breaks_a_contract(
        tmp_path: Path, module: str, line: str, reported: str) -> None:
    copy = tmp_path / "automation" / "tunegit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n",
                      encoding="utf-8")
    result = lint_imports(tmp_path, pythonpath=tmp_path / "automation")
    assert result.returncode == 1, result.stdout + result.stderr
    dotted = "tunegit." + module.removesuffix(".py").replace("/", ".")
    assert f"{dotted} -> {reported}" in result.stdout, result.stdout
