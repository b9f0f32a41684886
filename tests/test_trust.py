"""The trust boundary, on real git: the watcher acts only on the protected branch; a site
with `require_signed_commits: true` is served only from a validly signed plan commit (real
SSH signing keys made here with ssh-keygen, checked by `git verify-commit` against the
watcher's gpg.ssh.allowedSignersFile); a forged tunegit trailer does not smuggle changes
past it; and `tunegit guard-status --base REV` refuses hand edits of runs_status.yaml in CI.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gitfixtures import clone, commit_all, git, tunegit
from planfixtures import tiny_plan, weightless_model
from tunegit.edges.gitstore import status_message
from tunegit.edges.workspace import STATUS_FILE

pytestmark = [pytest.mark.usefixtures("git_env"),
              pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen")]


def keypair(tmp_path: Path, who: str) -> Path:
    key = tmp_path / "keys" / who
    key.parent.mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", who, "-f", str(key)],
                   check=True)
    return key


def signing(repo: Path, key: Path) -> None:
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", f"{key}.pub")


def signed_commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-S", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def status_of(origin: Path, name: str) -> dict[str, object]:
    data = yaml.safe_load(git(origin, "show", f"main:experiments/{name}/{STATUS_FILE}"))
    assert isinstance(data, dict)
    return data


def ft_state(origin: Path, name: str, run: str = "tiny-llama_rank8") -> str:
    runs = status_of(origin, name)["runs"]
    assert isinstance(runs, dict)
    return str(runs[run]["finetune"]["status"])


@pytest.fixture
def signed_setup(origin: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A laptop that signs with a trusted key; a watcher that trusts only that key; a
    strict site (signatures required) and an open one."""
    trusted, mallory = keypair(tmp_path, "alice"), keypair(tmp_path, "mallory")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"author@example.com {(trusted.with_suffix('.pub')).read_text()}")
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "w")
    git(watcher, "config", "gpg.format", "ssh")
    git(watcher, "config", "gpg.ssh.allowedSignersFile", str(allowed))
    signing(laptop, trusted)
    site = (laptop / "sites/local.yaml").read_text()
    (laptop / "sites/strict.yaml").write_text(site + "require_signed_commits: true\n")
    for name, site_name in (("strict1", "strict"), ("open1", "local")):
        plan = laptop / "experiments" / name / "experiment.yaml"
        plan.parent.mkdir(parents=True)
        plan.write_text(tiny_plan(name, site=site_name))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q"]) == 0
    signed_commit(laptop, "Plans, signed")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    return laptop, watcher, mallory


def test_signed_plan_commits_are_served(signed_setup: tuple[Path, Path, Path],
                                        origin: Path) -> None:
    _, watcher, _ = signed_setup
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    assert ft_state(origin, "strict1") != "pending" and ft_state(origin, "open1") != "pending"


@pytest.mark.parametrize("how", ["unsigned", "untrusted-key", "forged-trailer"])
def test_a_plan_commit_without_a_trusted_signature_is_refused(
        signed_setup: tuple[Path, Path, Path], origin: Path,
        capsys: pytest.CaptureFixture[str], how: str) -> None:
    laptop, watcher, mallory = signed_setup
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    git(laptop, "pull", "-q", "--ff-only", "origin", "main")
    for name in ("strict1", "open1"):  # each plan gains a run: something new to submit
        (laptop / "experiments" / name / "experiment.yaml").write_text(
            tiny_plan(name, site="strict" if name == "strict1" else "local",
                      factors={"lora_rank": [8, 32]}))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q"]) == 0
    if how == "unsigned":
        commit_all(laptop, "Add rank 32 (unsigned)")
        expected = "has no valid signature (the commit is not signed)"
    elif how == "untrusted-key":
        signing(laptop, mallory)
        signed_commit(laptop, "Add rank 32 (signed by a key the watcher does not trust)")
        expected = "has no valid signature (No principal matched.)"
    else:  # a human commit that poses as the watcher's own, changing an executed script
        signed_commit(laptop, "Add rank 32, signed")
        git(laptop, "push", "-q", "origin", "HEAD:main")
        (laptop / "tasks/capitalization/eval.py").write_text("import os; os.system('id')\n")
        git(laptop, "add", "-A")
        git(laptop, "commit", "-q", "-m", status_message([], None, ["strict1"]))
        expected = "carries tunegit's trailer but changes tasks/capitalization/eval.py"
    git(laptop, "push", "-q", "origin", "HEAD:main")
    capsys.readouterr()
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 1
    err = capsys.readouterr().err
    assert "strict1: its site requires signed commits and " in err and expected in err, err
    assert "nothing reconciled for it" in err and "hint: sign the commit" in err
    assert "Traceback" not in err
    assert ft_state(origin, "strict1", "tiny-llama_rank32") == "pending"  # not submitted
    assert ft_state(origin, "open1", "tiny-llama_rank32") != "pending"  # others are served

    if how == "forged-trailer":
        return
    # A maintainer vouches with a signed commit on top: the tree is served again.
    git(laptop, "config", "user.signingkey", str(laptop.parent / "keys" / "alice.pub"))
    git(laptop, "pull", "-q", "--rebase", "origin", "main")
    git(laptop, "commit", "-q", "-S", "--allow-empty", "-m", "Reviewed: signed")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    assert ft_state(origin, "strict1", "tiny-llama_rank32") != "pending"


def test_only_the_protected_branch_is_acted_on(origin: Path, tmp_path: Path) -> None:
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "w")
    git(laptop, "checkout", "-q", "-b", "feature")
    plan = laptop / "experiments" / "sneaky" / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan("sneaky"))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q"]) == 0
    commit_all(laptop, "Plan on a branch")
    git(laptop, "push", "-q", "origin", "feature")
    git(laptop, "tag", "v-sneaky")
    git(laptop, "push", "-q", "origin", "v-sneaky")
    before = git(origin, "rev-parse", "main")
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0
    assert git(origin, "rev-parse", "main") == before
    assert not (watcher / "experiments" / "sneaky").exists()
    assert not (watcher / ".tunegit").exists()  # nothing rendered, nothing ran
    refs = git(watcher, "for-each-ref", "--format=%(refname)").split()
    assert "refs/remotes/origin/feature" not in refs  # fetch takes the protected branch only


def _guard(repo: Path, base: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    rc = tunegit(["-C", str(repo), "guard-status", "--base", base])
    return rc, capsys.readouterr().err


def test_guard_status_refuses_hand_edits_in_ci(origin: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    laptop, watcher = clone(origin, tmp_path / "laptop"), clone(origin, tmp_path / "w")
    weightless_model(watcher)  # the preflight finds the model; the job is submitted
    plan = laptop / "experiments" / "exp1" / "experiment.yaml"
    plan.parent.mkdir(parents=True)
    plan.write_text(tiny_plan("exp1"))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q"]) == 0
    base = commit_all(laptop, "Plan exp1")
    git(laptop, "push", "-q", "origin", "HEAD:main")
    assert tunegit(["-C", str(watcher), "reconcile", "--once"]) == 0  # tunegit's own commit
    git(laptop, "pull", "-q", "--ff-only", "origin", "main")
    assert _guard(laptop, base, capsys) == (0, "")

    # A new run in the plan: its new pending record is what `check --write` does: allowed.
    plan.write_text(tiny_plan("exp1", factors={"lora_rank": [8, 32]}))
    assert tunegit(["-C", str(laptop), "check", "--write", "-q"]) == 0
    grown = commit_all(laptop, "Add rank 32")
    assert _guard(laptop, base, capsys)[0] == 0

    # A hand edit: a submitted record marked completed.
    path = laptop / "experiments/exp1" / STATUS_FILE
    text = path.read_text()
    assert "status: submitted" in text or "status: failed" in text or "status: running" in text
    for state in ("submitted", "running", "failed"):
        text = text.replace(f"status: {state}", "status: completed", 1)
    path.write_text(text)
    edit = commit_all(laptop, "Mark it done")
    rc, err = _guard(laptop, grown, capsys)
    assert rc == 1
    assert f"experiments/exp1/{STATUS_FILE}" in err and "record edited by hand" in err
    assert "runs.tiny-llama_rank8.finetune" in err and edit[:10] in err
    assert "git checkout HEAD --" in err and "Traceback" not in err

    # Deleting the file, or a record, is refused too.
    git(laptop, "reset", "-q", "--hard", grown)
    path.unlink()
    commit_all(laptop, "Remove status")
    rc, err = _guard(laptop, grown, capsys)
    assert rc == 1 and "deleted by hand" in err
    rc, err = _guard(laptop, "no-such-rev", capsys)
    assert rc == 1 and "unknown revision 'no-such-rev'" in err and "fetch-depth: 0" in err
