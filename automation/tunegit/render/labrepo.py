"""The files `tunegit init` writes into a lab's own experiments repository.

Pure: ``lab_files(url)`` returns {path in the lab repository: text}. Everything that names
tunegit pins this version's tag: the hooks (``rev:``), the CI workflow (``uses: ...@tag``,
whose reusable workflow installs tunegit at that tag), the README's install line. The
templates are ``templates/init/``; the example dataset is added by the command (it is
generated, not rendered).
"""

from __future__ import annotations

import re

from tunegit.errors import TunegitError
from tunegit.render.templating import render_template
from tunegit.version import requirement, tag

# The published hooks (.pre-commit-hooks.yaml of the tunegit repository).
HOOKS = ("tunegit-check", "tunegit-check-sites", "tunegit-guard-status")
# The reusable workflow in the tunegit repository that a lab's plan.yml calls.
REUSABLE_WORKFLOW = ".github/workflows/plan-checks.yml"
# {lab path: template under templates/init/}
TEMPLATES = {
    ".gitignore": "gitignore.j2",
    ".pre-commit-config.yaml": "pre-commit-config.yaml.j2",
    ".github/workflows/plan.yml": "plan.yml.j2",
    "README.md": "README.md.j2",
    "sites/local.yaml": "site-local.yaml.j2",
    "sites/cluster.yaml": "site-cluster.yaml.j2",
    "tasks/capitalization/eval.py": "capitalization_eval.py.j2",
}
_GITHUB = re.compile(r"^(?:https://github\.com/|git@github\.com:)"
                     r"(?P<slug>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?)(?:\.git)?/?$")


def github_slug(url: str) -> str:
    """``OWNER/NAME`` of a GitHub repository URL (what a workflow's ``uses:`` names)."""
    match = _GITHUB.match(url)
    if match is None:
        raise TunegitError(
            f"--tunegit-url {url!r}: not a GitHub repository URL",
            hint="give https://github.com/OWNER/NAME (a fork or the upstream): the CI workflow "
            "calls tunegit's reusable workflow there, and the hooks install from it")
    return match["slug"]


def lab_files(tunegit_url: str) -> dict[str, str]:
    """Every rendered file of a new lab repository."""
    slug = github_slug(tunegit_url)
    url = f"https://github.com/{slug}"
    context = {
        "tag": tag(),
        "tunegit_url": url,
        "hooks": HOOKS,
        "workflow": f"{slug}/{REUSABLE_WORKFLOW}",
        "requirement": requirement(url=url),
        "train_requirement": requirement("train", url=url),
    }
    return {path: render_template(f"init/{name}", **context)
            for path, name in sorted(TEMPLATES.items())}
