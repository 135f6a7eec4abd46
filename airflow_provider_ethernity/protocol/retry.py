"""Bounded retries with exponential backoff for transient RPC and IPFS faults (tenacity).

Transient: connection refused/reset, timeouts, HTTP 429/502/503/504. Everything else fails fast.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from airflow_provider_ethernity.protocol.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_HTTP_STATUS = frozenset({408, 425, 429, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is worth retrying: network-level failures and overload answers, not logic errors."""
    if isinstance(exc, TransientError):
        return True
    import httpx
    import requests

    if isinstance(exc, (httpx.TransportError, requests.ConnectionError, requests.Timeout, TimeoutError)):
        return True
    if isinstance(exc, ConnectionError):  # builtin: refused/reset/aborted
        return True
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    if isinstance(exc, (httpx.HTTPStatusError, requests.HTTPError)) and status in TRANSIENT_HTTP_STATUS:
        return True
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ServerTimeoutError):
            return True
        if isinstance(exc, aiohttp.ClientResponseError) and exc.status in TRANSIENT_HTTP_STATUS:
            return True
    except ImportError:  # pragma: no cover - aiohttp ships with web3
        pass
    return False


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most ``attempts`` tries within ``max_delay`` seconds, backoff from ``initial``."""

    attempts: int = 5
    initial: float = 0.5
    max_wait: float = 8.0
    max_delay: float = 60.0

    def _kwargs(self) -> dict[str, Any]:
        return {
            "stop": stop_after_attempt(self.attempts) | stop_after_delay(self.max_delay),
            "wait": wait_exponential_jitter(multiplier=self.initial, max=self.max_wait, jitter=self.initial),
            "retry": retry_if_exception(is_transient),
            "reraise": True,
            "before_sleep": self._log_retry,
        }

    def _log_retry(self, state: RetryCallState) -> None:
        """One line per retry naming the fault's type (not tenacity's ``Retrying <unknown>``). Its text is left
        out by construction: a transport error quotes the URL, and an RPC or IPFS URL may carry an API key."""
        outcome = state.outcome
        fault = outcome.exception() if outcome is not None else None
        pause = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "Transient fault (%s); try %s of %s in %.1f s",
            type(fault).__name__,
            state.attempt_number + 1,
            self.attempts,
            pause,
        )

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``fn`` retrying transient faults; the last exception propagates."""
        for attempt in Retrying(**self._kwargs()):
            with attempt:
                return fn(*args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn`` retrying transient faults; the last exception propagates."""
        async for attempt in AsyncRetrying(**self._kwargs()):
            with attempt:
                return await fn(*args, **kwargs)
        raise AssertionError("unreachable")  # pragma: no cover


DEFAULT_RETRY = RetryPolicy()
