"""The pure core: expand, validate, estimate, observe, reconcile, status, results, job plans.
Imports only spec/ (and errors): no rendering, files, clock, subprocess or git (pyproject.toml)."""
