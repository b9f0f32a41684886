"""One job's plan (pure): its name, script, log, resources and dependencies, computed once.

The job script's ``#SBATCH`` header is rendered from a JobPlan and the submitter
reads the same JobPlan: sbatch gets the script and its dependencies, never a
resource flag of its own, so the script a reviewer reads is what runs.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from pathlib import Path
from typing import TypeVar

from tunegit.errors import TunegitError
from tunegit.spec.models import JobSize
from tunegit.spec.site import Site, StageResources

_T = TypeVar("_T")

FINETUNE_STAGE = "ft"
# Joins the parts of a job name. Experiment, run and task names are [A-Za-z0-9._-] and may hold
# dots, so a dot could not keep them apart (`x.y` + `z_8` and `x` + `y.z_8`); a colon cannot
# occur in any of them, so two different steps never get one name. SLURM takes it as is.
JOB_NAME_SEPARATOR = ":"
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one job asks of the scheduler (from the site file and the estimate)."""

    gpus: int = 0
    gpu_type: str = ""  # SLURM's GRES type (gpu:<type>:N); empty: any GPU
    cpus: int = 1
    mem_gb: int = 4
    time_minutes: int = 60
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    extra: tuple[str, ...] = ()  # further sbatch options from the site, e.g. --mail-type=END


@dataclasses.dataclass(frozen=True)
class JobPlan:
    """One job to run: a rendered script, where to run it, and what it waits for.

    ``name`` is deterministic (experiment, run, stage, attempt), so a job can be
    found again by name after a crash. ``after`` names jobs (by ``name``) that
    must complete successfully first. ``log`` is where the job's output goes
    (the header's ``--output``; the local executor writes it too).
    """

    name: str
    script: Path
    workdir: Path
    log: Path
    resources: Resources = Resources()
    after: tuple[str, ...] = ()


def job_name(experiment: str, run: str, stage: str, attempt: int = 1) -> str:
    """``tg:<experiment>:<run>:<stage>``; later attempts add ``:a<N>``."""
    parts = ["tg", experiment, run, stage]
    for part in parts[1:]:
        if JOB_NAME_SEPARATOR in part or not part:
            raise TunegitError(f"{part!r} cannot be part of a job name",
                               hint="experiment, run and task names are [A-Za-z0-9._-]")
    if attempt != 1:
        parts.append(f"a{attempt}")
    return JOB_NAME_SEPARATOR.join(parts)


def log_path(run_dir: str, key: str | None, attempt: int = 1) -> str:
    """The file a job's output goes to; a later attempt gets its own, so the first is kept."""
    suffix = "" if attempt == 1 else f".a{attempt}"
    return posixpath.join(run_dir, "logs", f"{key or 'finetune'}{suffix}.log")


def site_resources(site: Site, *, gpus: int, minutes: int,
                   stage: StageResources | None = None, model: JobSize | None = None,
                   ) -> Resources:
    """The site's per-job settings, with this job's GPUs (none on a CPU site) and time. Memory
    and CPUs: the site's ``stage`` block (slurm.finetune, slurm.evaluation), else what the
    model catalog says the model's job of this stage needs (``model``), else the site's."""
    slurm, stage, model = site.slurm, stage or StageResources(), model or JobSize()

    def pick(value: _T | None, default: _T) -> _T:
        return default if value is None else value

    return Resources(
        gpus=0 if site.gpu.is_cpu else gpus, gpu_type=site.gpu.gres_type,
        cpus=pick(stage.cpus_per_task, pick(model.cpus_per_task, slurm.cpus_per_task)),
        mem_gb=pick(stage.mem_gb, pick(model.mem_gb, slurm.mem_gb)), time_minutes=minutes,
        partition=pick(stage.partition, slurm.partition), account=slurm.account,
        qos=pick(stage.qos, slurm.qos), constraint=pick(stage.constraint, slurm.constraint),
        extra=tuple(slurm.extra_sbatch))


def slurm_time(minutes: int) -> str:
    """90 -> ``1:30:00`` (SLURM's H:MM:SS)."""
    return f"{minutes // 60}:{minutes % 60:02d}:00"


def sbatch_options(*, name: str, chdir: Path, output: Path, resources: Resources,
                   array: str = "") -> list[str]:
    """Sorted ``--key=value`` lines for a script's ``#SBATCH`` header; optional site
    settings appear only when set. Values that would break out of the line are refused."""
    options = {
        "--job-name": name, "--chdir": str(chdir), "--output": str(output),
        "--time": slurm_time(resources.time_minutes), "--nodes": "1", "--ntasks": "1",
        "--cpus-per-task": str(resources.cpus), "--mem": f"{resources.mem_gb}G",
        "--account": resources.account, "--partition": resources.partition,
        "--qos": resources.qos, "--constraint": resources.constraint, "--array": array,
    }
    if resources.gpus > 0:
        kind = f"{resources.gpu_type}:" if resources.gpu_type else ""
        options["--gres"] = f"gpu:{kind}{resources.gpus}"
    lines = [f"{key}={value}" for key, value in options.items() if value]
    lines += [_extra(option) for option in resources.extra]
    for line in lines:
        if _UNSAFE.search(line):
            raise TunegitError(
                f"#SBATCH {line!r}: whitespace or control characters are not allowed here",
                hint="use paths and site values without spaces or newlines")
    return sorted(lines)


def job_options(job: JobPlan) -> list[str]:
    """The ``#SBATCH`` lines of one job's script."""
    return sbatch_options(name=job.name, chdir=job.workdir, output=job.log,
                          resources=job.resources)


def header_lines(job: JobPlan) -> str:
    """The ``#SBATCH`` block of one job's script, one option a line."""
    return "".join(f"#SBATCH {option}\n" for option in job_options(job))


def header_options(script_text: str) -> list[str]:
    """The ``#SBATCH`` options a script states, in order (what sbatch itself reads:
    the comment lines before the first command)."""
    out = []
    for line in script_text.splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#SBATCH"):
            out.append(stripped[len("#SBATCH"):].strip())
        elif stripped and not stripped.startswith("#"):
            break
    return out


def _extra(option: str) -> str:
    option = option.strip()
    if not option.startswith("-"):
        raise TunegitError(f"site slurm.extra_sbatch: {option!r} is not an sbatch option",
                           hint="write options such as `--mail-type=END`")
    return option
