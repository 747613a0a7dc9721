"""The package version, in a leaf module so any package can name it without importing the
public API in flowkit/__init__.py (keep it equal to pyproject.toml's)."""

__version__ = "0.1.0"
