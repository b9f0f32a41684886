"""SLURM as text: the command lines tunegit runs (``argv``), and parsers for what comes
back (``output``), gathered here as one namespace.

Pure: no subprocess, clock or filesystem. ``slurm.py`` runs the commands and
feeds their output in. What an observation means for runs_status.yaml is not SLURM's
business: ``tunegit.core.observe`` (re-exported here). Each parser is tested on output
recorded from a real SLURM 22.05 (``tests/fixtures/slurm/``).

Formats chosen (SLURM 22.05, and later):

- ``squeue -O`` with a ``|`` suffix on every field prints unpadded, untruncated
  fields and, unlike ``-o``, the job's raw exit status (``exit_code``: 768 is
  exit 3), so a failure's exit code needs no ``sacct``. ``Name`` is last, so a
  foreign job's name containing ``|`` cannot shift the fields before it.
- ``sacct -X -n -P`` (allocations only, no header, ``|``-separated, untruncated).
  ``State`` may read ``CANCELLED by 0``: the first word is the state. ``Reason``
  tells a dependency kill (``Dependency``) from a user's scancel (``None``).
- the ``jobcomp/filetxt`` log (one ``Key=Value ...`` line per finished job) is
  the record when accounting is off.
"""

from __future__ import annotations

from tunegit.core.observe import (
    CUDA_OOM_MARKERS,
    DEPENDENCY_NEVER_SATISFIED,
    FINISHED_JOB_STATES,
    has_cuda_oom,
    status_from_observation,
)
from tunegit.executors.slurm_parse.argv import (
    ARRAY_DIR,
    REGISTRY_MARKER,
    SACCT_FIELDS,
    SACCT_FORMAT,
    SQUEUE_FIELDS,
    SQUEUE_FORMAT,
    ArrayPlan,
    array_name,
    array_options,
    check_header,
    dependency_flags,
    is_array_wrapper,
    parse_array_registry,
    plan_array,
    render_array_wrapper,
    sacct_argv,
    sbatch_argv,
    sbatch_array_argv,
    scancel_argv,
    squeue_argv,
)
from tunegit.executors.slurm_parse.output import (
    ACCOUNTING_DISABLED,
    QueueRow,
    accounting_disabled,
    duration_s,
    exit_code_from_pair,
    exit_code_from_status,
    expand_task_ids,
    ids_by_name,
    iso_utc,
    job_state,
    observations_by_id,
    one_line,
    parse_jobcomp,
    parse_jobcomp_line,
    parse_sacct,
    parse_sbatch_id,
    parse_squeue,
    refused_for_now,
    row_ids,
)

__all__ = [
    "ACCOUNTING_DISABLED", "ARRAY_DIR", "CUDA_OOM_MARKERS", "DEPENDENCY_NEVER_SATISFIED",
    "FINISHED_JOB_STATES", "REGISTRY_MARKER", "SACCT_FIELDS", "SACCT_FORMAT", "SQUEUE_FIELDS",
    "SQUEUE_FORMAT", "ArrayPlan", "QueueRow", "accounting_disabled", "array_name",
    "array_options", "check_header", "dependency_flags", "duration_s", "exit_code_from_pair",
    "exit_code_from_status", "expand_task_ids", "has_cuda_oom", "ids_by_name", "is_array_wrapper",
    "iso_utc", "job_state", "observations_by_id", "one_line", "parse_array_registry",
    "parse_jobcomp", "parse_jobcomp_line", "parse_sacct", "parse_sbatch_id", "parse_squeue",
    "plan_array", "refused_for_now", "render_array_wrapper", "row_ids", "sacct_argv",
    "sbatch_argv", "sbatch_array_argv", "scancel_argv", "squeue_argv", "status_from_observation",
]
