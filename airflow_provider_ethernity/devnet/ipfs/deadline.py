"""Core calls that may never return (content the offline node lacks), run with a deadline.

The core cannot be interrupted: reading a CID it does not have blocks forever. Such calls run in their own
daemon thread and the request fails after the deadline; later requests for the same CID wait on the stuck call
instead of starting another, so stuck threads stay bounded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class _Call:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    abandoned: bool = False
    on_abandon: Callable[[], None] | None = None


class DeadlineCalls:
    """Runs core calls that may never return (content the offline node lacks) with a deadline.

    Each call runs in a daemon thread. While a call for a key is unfinished, later calls for the same key wait
    for it instead of starting another one, so a missing CID costs at most one stuck thread, however often it
    is asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, _Call] = {}

    def run(self, key: str, fn: Callable[[], T], timeout: float, on_abandon: Callable[[], None] | None = None) -> T:
        """``fn()``, or ``TimeoutError`` after ``timeout`` s (``on_abandon`` then runs when ``fn`` finally ends)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = self._running.get(key)
                if running is None:
                    call = self._running[key] = _Call()
                    break
            if not running.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(key)
        threading.Thread(target=self._work, args=(key, call, fn), name=f"kubo {key}", daemon=True).start()
        if call.done.wait(max(0.0, deadline - time.monotonic())):
            return self._outcome(call)
        with self._lock:
            if not call.done.is_set():
                call.abandoned, call.on_abandon = True, on_abandon
                raise TimeoutError(key)
        return self._outcome(call)

    def _work(self, key: str, call: _Call, fn: Callable[[], Any]) -> None:
        try:
            call.result = fn()
        except BaseException as exc:
            call.error = exc
        with self._lock:
            self._running.pop(key, None)
            call.done.set()
        if call.abandoned and call.on_abandon is not None:
            call.on_abandon()

    @staticmethod
    def _outcome(call: _Call) -> Any:
        if call.error is not None:
            raise call.error
        return call.result

    def stuck(self) -> int:
        """How many calls are still running (for logs and tests)."""
        with self._lock:
            return len(self._running)
