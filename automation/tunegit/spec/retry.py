"""experiments/NAME/retry.yaml: requests for new attempts of failed steps.

A request is reviewed in a pull request like a plan change, and the watcher applies it
once after the merge (see core.retry). Each names the attempt it asks for, so a request
that was applied, or that a later failure made stale, can never start a job again."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tunegit.spec.plan import Name, Strict

RETRY_FILE = "retry.yaml"
RETRY_HEADER = (
    "# New attempts of failed, cancelled or blocked steps, asked for through a pull request.\n"
    "# `tunegit retry EXP RUN [EVAL]` adds an entry; after the merge the watcher applies each\n"
    "# entry once (runs_status.yaml records it, with who asked) and never again.\n"
)


class RetryRequest(Strict):
    run: Name = Field(description="The run, as in runs_status.yaml.")
    eval: str | None = Field(default=None, min_length=1, description=(
        "An evaluation key of the run (as in runs_status.yaml); without it, the fine-tuning "
        "step (which also re-opens its evaluations that did not run)."))
    attempt: int = Field(ge=1, le=1000, description=(
        "The attempt this asks for: the number of the step's last attempt plus one (a step "
        "that never had a job, such as a blocked evaluation, keeps its number)."))
    reason: str = Field(min_length=1, max_length=500, description=(
        "Why a new attempt: what was wrong, and what changed."))

    @property
    def step(self) -> str:
        return f"{self.run}/{self.eval or 'finetune'}"

    @property
    def id(self) -> str:
        """What identifies the request: its step and attempt (`run/key@a2`)."""
        return f"{self.step}@a{self.attempt}"


class RetryFile(Strict):
    retry: list[RetryRequest] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    schema = RetryFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tunegit retry requests"
    return schema
