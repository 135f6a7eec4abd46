"""The devnet's user-facing error: ``ethernity-devnet`` prints its message as one line, without a traceback."""

from __future__ import annotations


class DevnetError(RuntimeError):
    """Something the user can act on (a tool missing, a port taken, a service that did not start)."""


class ToolNotFoundError(DevnetError):
    """A pinned devnet tool is not installed (and cannot be installed here)."""
