"""tunegit: GitOps for LLM fine-tuning experiments."""

from tunegit.version import version as _version

__version__ = _version()
