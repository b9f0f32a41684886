"""The command line: every command has a parser and --help that explains it."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from tunegit import cli, version

REPO = Path(__file__).resolve().parents[1]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_a_parser_and_a_module() -> None:
    parsers = subcommands()
    assert set(parsers) == set(cli.COMMANDS)
    for name, module in cli.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_help_explains_each_command(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: tunegit {name}")
    assert len(text.splitlines()) >= 4


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_version_is_pyproject_s(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert capsys.readouterr().out == f"tunegit {project['version']}\n"
    assert version.tag() == f"v{project['version']}"


def test_an_installed_package_reads_its_metadata_and_a_bare_one_says_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed, the package has no pyproject.toml beside it: the distribution's metadata
    gives the version, and without that a marker, not a crash."""
    monkeypatch.setattr(version, "_PYPROJECT", tmp_path / "pyproject.toml")
    version.version.cache_clear()
    try:
        monkeypatch.setattr(importlib.metadata, "version", lambda name: "9.8.7")
        assert version.version() == "9.8.7"
        version.version.cache_clear()

        def missing(name: str) -> str:
            raise importlib.metadata.PackageNotFoundError(name)

        monkeypatch.setattr(importlib.metadata, "version", missing)
        assert version.version() == version.UNKNOWN
    finally:
        version.version.cache_clear()


def test_the_train_extra_hint_installs_this_release_not_a_checkout() -> None:
    from tunegit.generators.tinymodel import TRAIN_EXTRA_HINT

    expected = f"pip install 'tunegit[train] @ git+{version.DEFAULT_URL}@{version.tag()}'"
    assert expected == TRAIN_EXTRA_HINT
