"""The command line: every command has a parser and --help that explains it."""

from __future__ import annotations

import argparse
import importlib

import pytest

from tunegit import cli


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
