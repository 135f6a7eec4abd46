"""What the watcher learns about its chain: the confirmation depth and the rhythm of its blocks.

Polls follow the chain's rhythm: once blocks come regularly (their interval, learnt from the heads seen,
is steady and at least about the poll interval), the next poll is timed for when the next block is due (its
phase taken from the earliest recent sighting, as sightings are never early; one block in
``PHASE_PROBE_EVERY`` is asked for a little early, so a phase learnt late moves earlier), and a late block is
retried after short, then growing pauses (up to the poll interval). Detection then lags a block by tens of
milliseconds while the requests per block stay at about two (one ``eth_blockNumber``, one ``eth_getLogs``).
"""

from __future__ import annotations

import collections
import logging

from airflow_provider_ethernity.protocol.watch_errors import brief
from airflow_provider_ethernity.protocol.watch_state import WatcherState

log = logging.getLogger("airflow_provider_ethernity.protocol.watcher")

#: Shortest retry pause while a due block is late.
MIN_POLL_STEP = 0.1
#: How long before a block is due the watcher asks for it: not at all. The due time comes from the earliest
#: *answer* that showed a block, a round trip late already, so a request sent then finds the block; one sent
#: earlier mostly finds nothing yet on a nearby RPC and costs a second ``eth_blockNumber`` per block.
POLL_EARLY = 0.0
#: But sightings are never earlier than the polls that made them: a phase learnt late would stay late. So one
#: block in ``PHASE_PROBE_EVERY`` is asked for a tenth of the interval early; when it is there already, the
#: phase moves earlier (measured on the 1 s devnet: 0.02 s early every block cost 1.96 ``eth_blockNumber`` per
#: block for a 64 ms median lag; on time every block, 1.04 but a phase stuck 0.4-0.6 s late).
PHASE_PROBE_EVERY = 4


class ChainRhythm(WatcherState):
    """Learns the block interval and phase from the heads seen, and the confirmation depth from the chain id."""

    def _observe_head(self, head: int, now: float, scheduled: bool = True) -> None:
        """Learn the chain's rhythm from the heads seen: the interval (median of one-block steps) and the
        arrival phase (the earliest sighting among recent blocks: sightings are never early)."""
        last = self._sightings[-1] if self._sightings else None
        if last is None or head > last[0]:
            if last is not None and head - last[0] == 1:
                self._steps.append(now - last[1])
                self.block_interval = regular_interval(self._steps)
            self._sightings.append((head, now))
            self._misses = 0
        elif scheduled:  # a poll a new waiter caused is not a late block
            self._misses += 1

    def _next_arrival(self) -> float | None:
        interval = self.block_interval
        if interval is None or not self._sightings:
            return None
        head = self._sightings[-1][0]
        return min(seen + (head + 1 - number) * interval for number, seen in self._sightings)

    def next_delay(self, now: float) -> float:
        """Seconds until the next poll: the poll interval, or timed to the next block when blocks are regular."""
        interval, due = self.block_interval, self._next_arrival()
        if interval is None or due is None or interval < 0.8 * self.poll_interval:
            return self.poll_interval
        next_block = self._sightings[-1][0] + 1
        due -= interval / 10 if next_block % PHASE_PROBE_EVERY == 0 else POLL_EARLY
        if self._misses == 0 and now < due:
            return due - now
        step = max(MIN_POLL_STEP, interval / 10)
        backoff: int = 2 ** max(0, self._misses - 2)
        return min(self.poll_interval, step * backoff)

    async def _learn_confirmations(self) -> None:
        """The confirmation depth of the chain's network (by ``eth_chainId``); 0 for unknown chains."""
        from airflow_provider_ethernity.protocol.networks import NETWORKS

        chain_id_of = getattr(self.reader, "chain_id", None)
        depth = 0
        if chain_id_of is not None:
            try:
                self.rpc_calls["eth_chainId"] += 1
                chain_id = int(await chain_id_of())
            except Exception as exc:
                log.warning("Ethernity watcher: eth_chainId failed (%s); will retry", brief(exc))
                return
            depth = max((n.confirmations for n in NETWORKS.values() if n.chain_id == chain_id), default=0)
        self.confirmations = depth


def regular_interval(steps: collections.deque[float]) -> float | None:
    """The median step when blocks come regularly (the middle half of the steps within 50% of it), else None:
    a chain that mines on demand (a devnet in automine mode) keeps the plain poll interval."""
    if len(steps) < 3:
        return None
    ordered = sorted(steps)
    median = ordered[len(ordered) // 2]
    spread = ordered[(3 * len(ordered)) // 4] - ordered[len(ordered) // 4]
    return median if median > 0 and spread <= 0.5 * median else None
