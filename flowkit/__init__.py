"""flowkit: a multi-agent LLM trading firm is one YAML file."""

from flowkit.errors import FlowkitError

__version__ = "0.1.0"
__all__ = ["FlowkitError", "__version__"]
