"""flowkit: a multi-agent LLM trading firm is one YAML file."""

from flowkit._version import __version__
from flowkit.errors import FlowkitError

__all__ = ["FlowkitError", "__version__"]
