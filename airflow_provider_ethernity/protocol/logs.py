"""What the protocol core logs to: a standard :class:`logging.Logger`, or Airflow's task logger (a structlog
``BoundLogger``) that the hook hands over. The core needs only these methods; it never imports Airflow."""

from __future__ import annotations

from typing import Any, Protocol


class Log(Protocol):
    """The logging methods the protocol core calls (``%``-style arguments)."""

    def debug(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def error(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...
