"""State and reason names: the vocabulary of runs_status.yaml and of schedulers."""

from __future__ import annotations

# States of a fine-tuning step or an evaluation in runs_status.yaml.
PENDING = "pending"
SUBMITTED = "submitted"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
SKIPPED = "skipped"
BLOCKED = "blocked"

STATUS_STATES = (PENDING, SUBMITTED, RUNNING, COMPLETED, FAILED, CANCELLED, SKIPPED, BLOCKED)
LIVE_STATES = frozenset({SUBMITTED, RUNNING})
TERMINAL_STATES = frozenset({COMPLETED, FAILED, CANCELLED, SKIPPED, BLOCKED})

# What a scheduler reports about a job (SLURM's vocabulary; the local executor uses it too).
JOB_PENDING = "PENDING"
JOB_RUNNING = "RUNNING"
JOB_COMPLETING = "COMPLETING"
JOB_COMPLETED = "COMPLETED"
JOB_FAILED = "FAILED"
JOB_CANCELLED = "CANCELLED"
JOB_TIMEOUT = "TIMEOUT"
JOB_OUT_OF_MEMORY = "OUT_OF_MEMORY"
JOB_NODE_FAIL = "NODE_FAIL"
JOB_PREEMPTED = "PREEMPTED"
JOB_UNKNOWN = "UNKNOWN"  # not known this cycle: never read as failure

# Reasons recorded next to a state.
REASON_DEPENDENCY_FAILED = "DependencyFailed"
REASON_BASE_MODEL = "BaseModel"
REASON_NON_ZERO_EXIT = "NonZeroExitCode"
REASON_TIMEOUT = "TimeLimit"
REASON_OOM = "OutOfMemory"
REASON_CUDA_OOM = "CudaOutOfMemory"
REASON_NODE_FAIL = "NodeFail"
REASON_PREEMPTED = "Preempted"
REASON_CANCELLED = "CancelledByUser"
REASON_SUBMIT_FAILED = "SubmitFailed"
REASON_EVAL_STATUS = "EvalLogNotSuccess"
REASON_PROCESS_LOST = "ProcessLost"  # a local job's process is gone without an exit code
REASON_LAUNCHING = "Launching"  # a local job recorded, its process starting
REASON_JOB_LOST = "JobLost"  # the executor no longer knows the job at all
# Held before submission: nothing was submitted, so the step is pending again by itself
# once the cause is gone (the next cycle checks again).
REASON_PREFLIGHT = "Preflight"  # a model, dataset, task script or tool the job needs is missing
REASON_CANNOT_RUN = "CannotRun"  # the plan cannot be run here (invalid, unknown site, ...)
HELD_REASONS = frozenset({REASON_PREFLIGHT, REASON_CANNOT_RUN})
