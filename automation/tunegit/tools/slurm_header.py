"""The part of every job script both tools share: #SBATCH options and the environment.

The same script runs under sbatch and under the local executor (``bash
script``), where #SBATCH lines are comments. The options come from the job's
JobPlan (tunegit.core.jobplan), which the submitter reads too.
"""

from __future__ import annotations

import re

from tunegit.core.jobplan import JobPlan, job_options
from tunegit.errors import TunegitError
from tunegit.tools.base import RenderContext

OFFLINE_VARIABLES = (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"))
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def environment_variables(ctx: RenderContext) -> list[tuple[str, str]]:
    """Exported variables: offline HF, tunegit importable, then the site's own (sorted)."""
    variables = list(OFFLINE_VARIABLES)
    if ctx.package_root:
        variables.append(("PYTHONPATH", ctx.package_root))
    for key, value in sorted(ctx.site.environment.variables.items()):
        if not _ENV_NAME.match(key):
            raise TunegitError(f"site environment.variables: {key!r} is not a variable name",
                               hint="use letters, digits and underscores")
        variables.append((key, value))
    return variables


def header_context(ctx: RenderContext, job: JobPlan) -> dict[str, object]:
    """What templates/slurm/_header.j2 needs: the job's #SBATCH lines and its environment."""
    env = ctx.site.environment
    lines = [("activate", env.activate), *(("setup", line) for line in env.setup),
             *(("teardown", line) for line in env.teardown)]
    for field, line in lines:
        if "\n" in line or "\r" in line:
            raise TunegitError(f"site environment.{field}: {line!r} must be one shell line",
                               hint="chain commands with `&&` on one line, or give a list")
    return {
        "sbatch": job_options(job),
        "purge": env.purge,
        "modules": list(env.modules),
        "activate": env.activate,
        "variables": environment_variables(ctx),
        "setup": list(env.setup),
        "teardown": list(env.teardown),
    }
