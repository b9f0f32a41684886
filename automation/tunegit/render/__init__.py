"""Text from records: the sandboxed jinja2 environment, runs_plan.md and the design log, plots.
Imports core/ and spec/ only; returns text (plots write their one PNG)."""
