"""Loading YAML: located errors, never a traceback, for every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from planfixtures import make_repo, minimal_plan, run_cli, write_plan
from tunegit.errors import PlanError
from tunegit.spec.loader import MAX_BYTES, load_file, load_text

FILE = "experiments/exp/experiment.yaml"
FAILED = "1 of 1 experiment(s) failed the check\n"
BOMB = """\
a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PlanError) as info:
        load_text(text, "f.yaml")
    return [p.format() for p in info.value.problems]


def check(tmp_path: Path, capsys: pytest.CaptureFixture[str],
          content: str | bytes) -> tuple[int, str]:
    root = make_repo(tmp_path)
    write_plan(root, "exp", content)
    code, out, err = run_cli(capsys, root, "check", "experiments/exp")
    assert "Traceback" not in out + err
    return code, err


def test_positions_of_values_and_keys() -> None:
    doc = load_text("a:\n  b: [1, 2]\n  c: x\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, 2], "c": "x"}}
    assert doc.positions[("a", "b", 1)] == (2, 10)
    assert doc.key_positions[("a", "c")] == (3, 3)
    assert doc.where(("a", "c")) == (3, 6)  # the value; a missing key points at its parent
    assert doc.where(("a", "missing", 0)) == (2, 3)  # the deepest known prefix: `a`'s value
    p = doc.problem(("a", "b", 1), "too big", hint="smaller")
    assert p.format() == "f.yaml:2:10: a.b[1]: too big\n  hint: smaller"


def test_keys_stay_the_written_text() -> None:
    doc = load_text("1: a\n~: b\n2024-01-01: c\ntrue: d\n", "f.yaml")
    assert list(doc.data) == ["1", "~", "2024-01-01", "true"]


@pytest.mark.parametrize(("text", "expected"), [
    ("a: 1\nb: 2\na: 3\n", ["f.yaml:3:1: a: duplicate key 'a' (first at line 1)\n"
                            "  hint: remove one of them: YAML would silently keep the last"]),
    ("a: !!python/object:os.system {}\n",
     ["f.yaml:1:4: a: tag 'tag:yaml.org,2002:python/object:os.system' is not allowed\n"
      "  hint: plans are plain YAML: remove the tag"]),
    ("a: !!python/name:os.system\n",
     ["f.yaml:1:4: a: tag 'tag:yaml.org,2002:python/name:os.system' is not allowed\n"
      "  hint: plans are plain YAML: remove the tag"]),
    ("a: !!binary aGVsbG8=\n", ["f.yaml:1:4: a: tag 'tag:yaml.org,2002:binary' is not allowed\n"
                                "  hint: plans are plain YAML: remove the tag"]),
    ("a: !foo x\n", ["f.yaml:1:4: a: tag '!foo' is not allowed\n"
                     "  hint: plans are plain YAML: remove the tag"]),
    ("x: &x {a: 1}\ny:\n  <<: *x\n", ["f.yaml:3:3: y: merge keys (<<) are not supported\n"
                                      "  hint: write the keys out"]),
    ("a: !!int abc\n", ["f.yaml:1:4: a: cannot read this value: invalid literal for int() "
                        "with base 10: 'abc'\n"
                        "  hint: write a plain number, string, true/false or null"]),
    ('a: "\\ud800"\n', ["f.yaml:1:4: a: contains a NUL or an unpaired surrogate (\\0, \\ud800...)"
                        "\n  hint: remove the escape"]),
    ("a: b\x07\n", ["f.yaml:1:5: control character U+0007 is not allowed in YAML\n"
                    "  hint: remove it, or write it as an escape inside double quotes"]),
    ("a: [1, 2\n", ["f.yaml:2:1: YAML syntax error: expected ',' or ']', but got '<stream end>'\n"
                    "  hint: check indentation and quoting near this line; quote values "
                    "containing ': ' or '#'"]),
    ("a:\n\tb: 1\n", ["f.yaml:2:1: YAML syntax error: found character '\\t' that cannot start "
                      "any token\n  hint: check indentation and quoting near this line; quote "
                      "values containing ': ' or '#'"]),
    ("# only a comment\n", ["f.yaml:1:1: the file is empty\n"
                            "  hint: run `tunegit new NAME` for a commented skeleton"]),
    ("a: &a [*a]\n", ["f.yaml:1:4: a[0][0]...: nested more than 64 levels deep (a recursive "
                      "alias?)\n  hint: a plan is a few levels deep; remove self-referencing "
                      "aliases"]),
])
def test_located_problems(text: str, expected: list[str]) -> None:
    assert problems(text) == expected


def test_every_problem_of_a_file_in_one_pass() -> None:
    found = problems("a: 1\na: 2\nb: !!python/object:x {}\nc: !!set {x}\nb: 3\n")
    assert [p.split(": ", 1)[0] for p in found] == ["f.yaml:2:1", "f.yaml:3:4", "f.yaml:4:4",
                                                    "f.yaml:5:1"]


def test_alias_bomb_is_stopped() -> None:
    [found] = problems(BOMB)
    assert "more than 200000 values (an alias bomb?)" in found


@pytest.mark.parametrize("text", ["a: " + "[" * 50_000 + "]" * 50_000,
                                  "".join("  " * i + f"k{i}:\n" for i in range(3000))])
def test_deep_nesting_is_an_error_not_a_recursion_error(text: str) -> None:
    [found] = problems(text)
    assert found.startswith("f.yaml") and "nested" in found


def test_read_limits(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"a: " + b"x" * MAX_BYTES + b"\n")
    with pytest.raises(PlanError) as info:
        load_file(huge, "huge.yaml")
    assert info.value.problems[0].format() == (
        f"huge.yaml: file is {MAX_BYTES + 4} bytes; the limit is {MAX_BYTES}\n"
        "  hint: a plan is a few KB of YAML")
    with pytest.raises(PlanError) as info:
        load_file(tmp_path / "absent.yaml", "absent.yaml")
    assert info.value.problems[0].format() == "absent.yaml: no such file"
    with pytest.raises(PlanError) as info:
        load_file(tmp_path, "dir")
    assert info.value.problems[0].format() == "dir: is a directory, not a file"


# --- through main(): exit 1, the exact message, never a traceback ---------------------------

@pytest.mark.parametrize(("content", "expected"), [
    ("", f"{FILE}:1:1: the file is empty\n"
         "  hint: run `tunegit new NAME` for a commented skeleton\n"),
    ("name: exp\nname: exp\n", f"{FILE}:2:1: name: duplicate key 'name' (first at line 1)\n"
                               "  hint: remove one of them: YAML would silently keep the last\n"),
    ("name: [\n", f"{FILE}:2:1: YAML syntax error: expected the node content, but found "
                  "'<stream end>'\n  hint: check indentation and quoting near this line; quote "
                  "values containing ': ' or '#'\n"),
    (b"\x00\x01\x02binary", f"{FILE}: binary content (NUL bytes); not a YAML file\n"),
    (b"name: exp\nquestion: caf\xe9\n", f"{FILE}:2: not valid UTF-8 text\n"
                                        "  hint: save the file as UTF-8\n"),
    ("- a\n- b\n", f"{FILE}:1:1: expected a mapping of keys (like `name: ...`), got list\n"
                   "  hint: see `tunegit schema` for the keys\n"),
    (minimal_plan("exp", ("question: Does rank matter?",
                          "question: !!python/object/apply:os.system [id]")),
     f"{FILE}:2:11: question: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not "
     "allowed\n  hint: plans are plain YAML: remove the tag\n"),
    (BOMB, f"{FILE}:1:32: more than 200000 values (an alias bomb?)\n"
           "  hint: a plan needs far fewer values; remove YAML aliases (*name)\n"),
])
def test_bad_files_exit_1_with_a_located_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes,
        expected: str) -> None:
    code, err = check(tmp_path, capsys, content)
    assert code == 1
    assert err == expected + FAILED


def test_huge_plan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = check(tmp_path, capsys, "notes: " + "x" * MAX_BYTES + "\n")
    assert code == 1
    assert err == (f"{FILE}: file is {MAX_BYTES + 8} bytes; the limit is {MAX_BYTES}\n"
                   f"  hint: a plan is a few KB of YAML\n{FAILED}")


def test_python_tags_are_never_constructed(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "pwned"
    text = minimal_plan("exp", ("question: Does rank matter?",
                                f"question: !!python/object/apply:os.system ['touch {marker}']"))
    code, _ = check(tmp_path / "repo", capsys, text)
    assert code == 1
    assert not marker.exists()
