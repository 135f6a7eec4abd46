"""How the watcher reads an RPC's errors: a refused log range (ask for fewer blocks) versus anything else.

Log queries are split into chunks of ``max_range`` blocks (5,000 at first). An RPC's "range too wide / too
many results" error halves it (or sets it to the limit the message names), and the watcher remembers it.
"""

from __future__ import annotations

import re

from airflow_provider_ethernity.protocol.retry import is_transient

_RANGE_ERROR = re.compile(
    r"-32005|-32614|range|too many|more than|too large|exceed|limit|response size|query timeout", re.IGNORECASE
)
_LAG_ERROR = re.compile(r"beyond|future|head block|not found|unknown block|after last", re.IGNORECASE)
_NAMED_LIMIT = re.compile(r"(\d[\d,_]*)\s*(k\s*)?-?\s*blocks?\b", re.IGNORECASE)


class RangeError(Exception):
    """The RPC refused a log query's range (or its result size)."""


def is_range_error(exc: BaseException) -> bool:
    """Whether an ``eth_getLogs`` error means "ask for fewer blocks" (not a network fault, not replica lag)."""
    text = str(exc)
    return not is_transient(exc) and bool(_RANGE_ERROR.search(text)) and not _LAG_ERROR.search(text)


def named_range_limit(text: str) -> int:
    """The block limit a range error's message names ("10,000 blocks", "2k blocks"), else 0."""
    named = _NAMED_LIMIT.search(text)
    if not named:
        return 0
    return int(re.sub(r"[,_]", "", named.group(1))) * (1000 if named.group(2) else 1)


def brief(exc: BaseException) -> str:
    """An exception in one short line for a log message."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
