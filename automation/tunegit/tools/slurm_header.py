"""The part of every job script both tools share: #SBATCH options and the environment.

The same script runs under sbatch and under the local executor (``bash
script``), where #SBATCH lines are comments. Options are sorted so renders
are stable; values that would break out of an #SBATCH line are refused.
"""

from __future__ import annotations

import re

from tunegit.errors import TunegitError
from tunegit.expand import Run
from tunegit.tools.base import RenderContext

OFFLINE_VARIABLES = (("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_OFFLINE", "1"))
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def job_name(ctx: RenderContext, run: Run, stage: str) -> str:
    """Deterministic job name: ``tg.<experiment>.<run>.<stage>`` (stage ``ft`` or an eval key)."""
    return f"tg.{ctx.plan.name}.{run.name}.{stage}"


def slurm_time(minutes: int) -> str:
    """90 -> ``1:30:00`` (SLURM's H:MM:SS)."""
    return f"{minutes // 60}:{minutes % 60:02d}:00"


def sbatch_options(ctx: RenderContext, *, name: str, minutes: int, gpus: int, chdir: str,
                   output: str) -> list[str]:
    """Sorted ``--key=value`` options for one job."""
    slurm = ctx.site.slurm
    options = {
        "--job-name": name, "--chdir": chdir, "--output": output,
        "--time": slurm_time(minutes), "--nodes": "1", "--ntasks": "1",
        "--cpus-per-task": str(slurm.cpus_per_task), "--mem": f"{slurm.mem_gb}G",
        "--account": slurm.account, "--partition": slurm.partition, "--qos": slurm.qos,
        "--constraint": slurm.constraint,
    }
    if ctx.site.gpu.type.lower() != "cpu":
        options["--gres"] = f"gpu:{gpus}"
    lines = [f"{key}={value}" for key, value in options.items() if value]
    lines += [_extra(option) for option in slurm.extra_sbatch]
    for line in lines:
        _check_safe(line)
    return sorted(lines)


def _extra(option: str) -> str:
    option = option.strip()
    if not option.startswith("-"):
        raise TunegitError(f"site slurm.extra_sbatch: {option!r} is not an sbatch option",
                           hint="write options such as `--mail-type=END`")
    return option


def _check_safe(line: str) -> None:
    if _UNSAFE.search(line):
        raise TunegitError(
            f"#SBATCH {line!r}: whitespace or control characters are not allowed here",
            hint="use paths and site values without spaces or newlines")


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


def header_context(ctx: RenderContext, *, name: str, minutes: int, gpus: int, chdir: str,
                   output: str) -> dict[str, object]:
    """What templates/slurm/_header.j2 needs."""
    env = ctx.site.environment
    if "\n" in env.activate or "\r" in env.activate:
        raise TunegitError("site environment.activate: must be one shell line",
                           hint="chain commands with `&&` on one line")
    return {
        "sbatch": sbatch_options(ctx, name=name, minutes=minutes, gpus=gpus, chdir=chdir,
                                 output=output),
        "modules": list(env.modules),
        "activate": env.activate,
        "variables": environment_variables(ctx),
    }
