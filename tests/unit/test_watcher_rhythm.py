"""The shared watcher's poll timing: timed to regular blocks, the plain poll interval otherwise."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_ethernity.protocol.watch_rhythm import PHASE_PROBE_EVERY
from airflow_provider_ethernity.protocol.watcher import MIN_POLL_STEP, POLL_EARLY, OrderEventWatcher


def watcher(poll_interval: float = 1.0) -> OrderEventWatcher:
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return OrderEventWatcher(lambda: None, poll_interval)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_regular_blocks_time_the_next_poll() -> None:
    w = watcher()
    for n in range(6):
        w._observe_head(100 + n, 10.0 + n * 1.0 + (0.05 if n % 2 else 0.0))
    assert w.block_interval == pytest.approx(1.0, abs=0.06)
    # next block due about 1 s after the earliest sighting's phase: asked for just before
    delay = w.next_delay(15.06)
    assert 0.9 < delay < 1.05 and delay == pytest.approx(16.1 - POLL_EARLY - 15.06)
    # late block: short retries first, then growing, never beyond the poll interval
    w._observe_head(105, 16.0)
    assert w.next_delay(16.0) == pytest.approx(max(MIN_POLL_STEP, w.block_interval / 10))
    for _ in range(6):
        w._observe_head(105, 16.1)
    assert w.next_delay(16.1) == pytest.approx(1.0)


def test_blocks_on_demand_keep_the_poll_interval() -> None:
    w = watcher(poll_interval=0.2)
    for n, t in enumerate([0.0, 0.01, 3.0, 3.02, 9.0, 9.5, 20.0]):
        w._observe_head(n, t)
    assert w.block_interval is None
    assert w.next_delay(20.0) == 0.2


def test_a_new_waiters_wake_up_is_not_a_late_block() -> None:
    w = watcher()
    for n in range(5):
        w._observe_head(n, float(n))
    w._observe_head(4, 4.3, scheduled=False)
    assert w._misses == 0


def test_one_block_in_a_few_is_asked_for_early_so_a_late_phase_moves_earlier() -> None:
    """Sightings are never earlier than the polls that made them: polled on time, a phase learnt 0.5 s late
    would stay late. One block in PHASE_PROBE_EVERY is asked for a tenth of the interval early."""
    w = watcher()
    for n in range(1, 8):  # blocks 1..7, each seen 0.5 s after its (unknown) arrival at n.0
        w._observe_head(n, n + 0.5)
    assert w.block_interval == pytest.approx(1.0)
    assert 8 % PHASE_PROBE_EVERY == 0 and w.next_delay(7.6) == pytest.approx(8.5 - 0.1 - 7.6)  # a phase probe
    w._observe_head(8, 8.4)  # block 8 was there already: the phase moves 0.1 s earlier
    assert w.next_delay(8.5) == pytest.approx(9.4 - POLL_EARLY - 8.5)  # block 9: on time, at the new phase
