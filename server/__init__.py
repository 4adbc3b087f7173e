"""Deskpilot's local server: HTTP API, SSE streaming, security checks, lineage and app wiring."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deskpilot")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
