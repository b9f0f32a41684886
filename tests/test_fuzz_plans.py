"""Fuzz: random and mutated plans never crash `tunegit check` (exit 0 or 1, located errors)."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planfixtures import make_repo, minimal_plan, write_plan
from tunegit.cli import main

PLAN = minimal_plan("exp")
BASE = yaml.safe_load(PLAN)
LINE = re.compile(r"^((warning: )?(experiments/exp|sites)/[^:\n]*(:\d+(:\d+)?)?: .+"
                  r"|  hint: .*|\d+ of \d+ experiment\(s\) failed the check)$")
TOKENS = ["", "-", ":", "[", "]", "{", "}", "&a", "*a", "!!python/object:os.system {}", "~",
          "null", "0", "-1", "1e-5", ".nan", ".inf", "true", "'", '"', "#", "\t", "{{model}}",
          "../..", "/etc/passwd", "9" * 30, "best", "all", "[0, 99]", "{a: 1}", "\\ud800",
          "Llama-3.2-1B-Instruct_base", "lora_rank", "model", "dataset", "gpus", "<<: *a"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(TOKENS))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(TOKENS)), inner, max_size=4)),
    max_leaves=12)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _replace(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(data, dict):
        return {**data, head: _replace(data[head], rest, value)}
    copy = list(data)
    copy[head] = _replace(copy[head], rest, value)
    return copy


@st.composite
def structured(draw: st.DrawFn) -> str:
    """A valid plan with one value (anywhere) replaced by random data, dumped as YAML."""
    path = draw(st.sampled_from(_paths(BASE)))
    return yaml.safe_dump(_replace(BASE, path, draw(values)), sort_keys=False)


@st.composite
def textual(draw: st.DrawFn) -> str:
    """The plan's text with lines deleted, duplicated, or a token spliced in."""
    lines = PLAN.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "splice", "indent"]))
        if op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "splice":
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(TOKENS)) + lines[i][at:]
        else:
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
    return "".join(lines)


plans = st.one_of(structured(), textual(), st.text(max_size=200),
                  st.binary(max_size=200).map(lambda b: b.decode("latin-1")))


@pytest.fixture(scope="module")
def fuzz_check(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], None]:
    root = make_repo(tmp_path_factory.mktemp("fuzz"))

    def run(text: str) -> None:
        path = write_plan(root, "exp", "")
        path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
        for name in ("runs_plan.md", "runs_status.yaml", "design-experiment.log"):
            (path.parent / name).unlink(missing_ok=True)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["-C", str(root), "check", "--write", "experiments/exp"])
        assert code in (0, 1), err.getvalue()
        assert "Traceback" not in out.getvalue() + err.getvalue()
        for line in err.getvalue().rstrip("\n").split("\n") if err.getvalue() else []:
            assert LINE.match(line), line
    return run


SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])


@settings(max_examples=60, **SETTINGS)  # type: ignore[arg-type]
@given(text=plans)
def test_fuzz_quick(fuzz_check: Callable[[str], None], text: str) -> None:
    fuzz_check(text)


@pytest.mark.slow
@settings(max_examples=1500, **SETTINGS)  # type: ignore[arg-type]
@given(text=plans)
def test_fuzz_many(fuzz_check: Callable[[str], None], text: str) -> None:
    fuzz_check(text)


@pytest.mark.parametrize("text", [PLAN, PLAN.replace("controls: true", "controls: false")])
def test_fuzz_harness_accepts_a_good_plan(fuzz_check: Callable[[str], None], text: str) -> None:
    fuzz_check(text)
