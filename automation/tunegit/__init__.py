"""tunegit: GitOps for LLM fine-tuning experiments."""

__version__ = "0.1.0"
