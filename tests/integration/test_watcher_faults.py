"""The shared watcher through a faulty RPC (``tests/rpc_faults.py``) in front of the devnet's anvil.

Each test plays both sides of the orders itself (raw transactions, the agent idle), so it controls exactly
when and in which block an event appears: logs served behind the head, an RPC that refuses wide log
ranges, and reorgs (``anvil_reorg``) that re-mine a close at a scanned height or replace a placement.
Periodic status probes are switched off where a test proves that the logs path itself copes.

The suite runs on every devnet profile (interval mining, legacy gas on bloxberg, a base fee on polygon); the
fault proxy stands in front of anvil itself, so a profile's chain front (lag, hidden closes) does not mix in.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_ethernity.protocol import watcher as wm
from airflow_provider_ethernity.protocol.abi import PROTOCOL, TOKEN, load_abi
from airflow_provider_ethernity.protocol.async_client import AsyncChainReader
from airflow_provider_ethernity.protocol.events import ORDER_CLOSED_TOPIC, decode_order_closed
from airflow_provider_ethernity.protocol.watcher import OrderEventWatcher
from benchmarks.orders import BENCH_NODE_KEY, RESOURCES, Sender, wait_mined
from tests.profile_devnets import EVERY_PROFILE, REAL_APPROVAL_WINDOW, started_devnet
from tests.rpc_faults import RpcFaultProxy

pytestmark = pytest.mark.integration
GAS = 600_000


class Market:
    """Both sides of orders on the devnet chain: the requester's DO requests, a node's DP requests and orders."""

    def __init__(self, devnet: Any) -> None:
        from web3 import Web3

        state = devnet.state
        rpc_url = state.anvil_rpc_url or state.rpc_url  # anvil itself, not a profile's chain front
        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
        self.address = state.protocol_address
        self.block_time = state.block_time or 0
        self.protocol = self.w3.eth.contract(address=state.protocol_address, abi=load_abi(PROTOCOL))
        self.requester = Sender(self.w3, devnet.requester_key)
        self.node = Sender(self.w3, BENCH_NODE_KEY)
        token = self.w3.eth.contract(address=state.token_address, abi=load_abi(TOKEN))
        self._send(self.requester, token.functions.approve(state.protocol_address, 10**6 * 10**18))

    def _send(self, sender: Sender, call: Any) -> Any:
        (tx_hash,) = sender.send_all([call], GAS)
        wait_mined(self.w3, [tx_hash], 60)
        return self.w3.eth.get_transaction_receipt(tx_hash)

    @contextlib.contextmanager
    def mining_paused(self) -> Iterator[None]:
        """No block but the ones the test makes (a transaction, ``evm_mine``) on a profile's interval-mined
        chain, so a reorg's depth means what the test says; the chain's rhythm is restored afterwards."""
        if not self.block_time:
            yield
            return
        self.rpc("evm_setIntervalMining", 0)
        self.rpc("evm_setAutomine", True)
        try:
            yield
        finally:
            self.rpc("evm_setAutomine", False)
            self.rpc("evm_setIntervalMining", int(self.block_time))

    def rpc(self, method: str, *params: Any) -> Any:
        return self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]

    def head(self) -> int:
        return int(self.w3.eth.block_number)

    def requests(self) -> tuple[int, int]:
        """A new (DO request, DP request) pair that fit each other."""
        do_id = int(self.protocol.functions._getDORequestsCount().call())
        self._send(self.requester, self.protocol.functions._addDORequest(*RESOURCES, "v3:w", "v3:w", "v3:w", ""))
        dp_id = int(self.protocol.functions._getDPRequestsCount().call())
        self._send(self.node, self.protocol.functions._addDPRequest(255, 255, 255, 255, 65535, 0, "w", "", "", ""))
        return do_id, dp_id

    def place(self, do_id: int, dp_id: int) -> tuple[int, int]:
        """(order id, block) of a placement."""
        order_id = int(self.protocol.functions._getOrdersCount().call())
        receipt = self._send(self.node, self.protocol.functions._placeOrder(do_id, dp_id))
        return order_id, int(receipt["blockNumber"])

    def approve(self, order_id: int) -> None:
        self._send(self.requester, self.protocol.functions._approveOrder(order_id))

    def close(self, order_id: int) -> int:
        receipt = self._send(self.node, self.protocol.functions._addResultToOrder(order_id, f"v3:w:{order_id}"))
        return int(receipt["blockNumber"])

    def signed_close(self, order_id: int) -> str:
        raw, _hash = self.node.sign(self.protocol.functions._addResultToOrder(order_id, f"v3:w:{order_id}"), GAS)
        return "0x" + raw.hex()

    def close_block(self, order_id: int, from_block: int) -> int | None:
        logs = self.w3.eth.get_logs({"address": self.address, "fromBlock": from_block, "toBlock": "latest",
                                     "topics": [ORDER_CLOSED_TOPIC]})  # fmt: skip
        return next((int(e["blockNumber"]) for e in logs if decode_order_closed(e["data"]) == order_id), None)


@pytest.fixture(scope="module", params=EVERY_PROFILE)
def devnet(request: pytest.FixtureRequest, default_devnet: Any, tmp_path_factory: Any) -> Iterator[Any]:
    """The suite runs on each profile's devnet in turn."""
    yield from started_devnet(request.param, default_devnet, tmp_path_factory, REAL_APPROVAL_WINDOW)


@pytest.fixture
def market(agent: Any) -> Market:
    agent.set_agent(mode="idle")  # the test is the node
    return Market(agent)


@pytest.fixture
def miner(market: Market) -> Iterator[None]:
    """A block every 0.25 s (the chain moves on, as a real one does, while a replica lags)."""
    stop = threading.Event()

    def mine() -> None:
        while not stop.wait(0.25):
            market.rpc("evm_mine")

    thread = threading.Thread(target=mine, daemon=True, name="test-miner")
    thread.start()
    yield
    stop.set()
    thread.join(5)


def watcher_for(url: str, market: Market, **kwargs: Any) -> OrderEventWatcher:
    kwargs.setdefault("confirmations", 0)
    return OrderEventWatcher(lambda: AsyncChainReader(url, market.address), 0.2, **kwargs)


async def stop_watcher(w: OrderEventWatcher) -> None:
    if w._task is not None:
        w._task.cancel()
        await asyncio.gather(w._task, return_exceptions=True)


def test_logs_two_blocks_behind_the_head_every_wait_completes(market, miner, monkeypatch) -> None:
    monkeypatch.setattr(wm, "PROBE_EVERY", 10**9)  # the logs alone must do it
    with RpcFaultProxy(market.w3.provider.endpoint_uri, logs_lag=2) as proxy:
        pairs = [market.requests() for _ in range(3)]
        from_block = market.head()

        async def run(overlap: int, seconds: float) -> tuple[list[Any], list[Any], OrderEventWatcher]:
            w = watcher_for(proxy.url, market, overlap=overlap)
            placed = [asyncio.ensure_future(w.wait_order_placed(do, from_block)) for do, _dp in pairs]
            await asyncio.sleep(0.5)
            orders = []
            for do_id, dp_id in pairs:
                orders.append(await asyncio.to_thread(market.place, do_id, dp_id))
                await asyncio.sleep(0.3)
            done, _pending = await asyncio.wait(placed, timeout=seconds)
            got = [t.result() if t in done else None for t in placed]
            for t in placed:
                t.cancel()
            await stop_watcher(w)
            return got, orders, w

        # today's hazard, reproduced: a cursor that trusts one query per block misses the lagging events
        pairs_before = pairs
        got, orders, _w = asyncio.run(run(overlap=0, seconds=3))
        assert got != [o for o, _b in orders], "the proxy did not reproduce the lag"
        for order_id, _block in orders:  # finish those orders so the DO requests are not left booked
            market.approve(order_id)
            market.close(order_id)

        pairs = [market.requests() for _ in range(3)]
        assert pairs != pairs_before
        from_block = market.head()
        got, orders, _w = asyncio.run(run(overlap=wm.DEFAULT_OVERLAP, seconds=20))
        assert got == [o for o, _b in orders]
        assert proxy.clamped > 0

        # and the closes, with their real blocks (found in the logs, not by a probe)
        for order_id, _block in orders:
            market.approve(order_id)

        async def closes() -> list[int]:
            w = watcher_for(proxy.url, market)
            waits = [asyncio.ensure_future(w.wait_order_closed(o, from_block)) for o, _b in orders]
            await asyncio.sleep(0.3)
            for order_id, _block in orders:
                await asyncio.to_thread(market.close, order_id)
            try:
                return list(await asyncio.wait_for(asyncio.gather(*waits), 20))
            finally:
                await stop_watcher(w)

        blocks = asyncio.run(closes())
        assert blocks == [market.close_block(o, from_block) for o, _b in orders]


def test_an_rpc_refusing_wide_log_ranges_a_wait_from_block_0_stalls_nobody(market, monkeypatch) -> None:
    do_old, dp_old = market.requests()
    old_order, _ = market.place(do_old, dp_old)
    market.approve(old_order)
    old_close = market.close(old_order)
    for _ in range(10):  # the old close is now 3,000 blocks back (in steps: a loaded machine mines slowly)
        market.rpc("anvil_mine", hex(300))
    do_new, dp_new = market.requests()
    head = market.head()
    with RpcFaultProxy(market.w3.provider.endpoint_uri, max_log_range=1000) as proxy:

        async def run() -> tuple[int, float, int, OrderEventWatcher]:
            w = watcher_for(proxy.url, market)
            old = asyncio.ensure_future(w.wait_order_closed(old_order, 0))  # a sensor given only an order id
            never = asyncio.ensure_future(w.wait_order_closed(old_order + 10**6, 0))  # no such order
            new = asyncio.ensure_future(w.wait_order_placed(do_new, head))
            await asyncio.sleep(1.0)
            placed_at = time.monotonic()
            order_id, _block = await asyncio.to_thread(market.place, do_new, dp_new)
            got = await asyncio.wait_for(new, 10)
            latency = time.monotonic() - placed_at
            assert got == order_id
            closed = await asyncio.wait_for(old, 20)
            await asyncio.sleep(1.0)
            never.cancel()
            await stop_watcher(w)
            return closed, latency, order_id, w

        closed, latency, _order_id, w = asyncio.run(run())
    assert latency < 5, f"the live wait took {latency:.1f} s behind the far-back wait"
    assert closed in (old_close, 0)  # by the back-scan (its block) or its first status probe (0)
    assert w.max_range <= 1000
    assert 0 < proxy.refused <= 6, f"{proxy.refused} refused log queries"


def test_a_close_re_mined_by_a_reorg_at_a_scanned_height_completes_the_wait(market, monkeypatch) -> None:
    monkeypatch.setattr(wm, "PROBE_EVERY", 10**9)  # the re-scanned overlap must find it
    do_id, dp_id = market.requests()
    order_id, _block = market.place(do_id, dp_id)
    market.approve(order_id)
    from_block = market.head()
    with RpcFaultProxy(market.w3.provider.endpoint_uri) as proxy, market.mining_paused():

        async def run() -> tuple[int, int]:
            w = watcher_for(proxy.url, market)
            wait = asyncio.ensure_future(w.wait_order_closed(order_id, from_block))
            for _ in range(3):
                await asyncio.to_thread(market.rpc, "evm_mine")
                await asyncio.sleep(0.3)
            scanned = w._scanned_to or 0
            assert scanned >= from_block + 3 and not wait.done()
            # the last 3 blocks are replaced; the close lands in the first of them, already scanned
            answer = await asyncio.to_thread(market.rpc, "anvil_reorg", 3, [[market.signed_close(order_id), 0]])
            assert "error" not in answer, answer
            try:
                return await asyncio.wait_for(wait, 15), scanned
            finally:
                await stop_watcher(w)

        block, scanned = asyncio.run(run())
    assert block == market.close_block(order_id, from_block)
    assert block <= scanned - 2, "the close was not re-mined at a scanned height"


def test_a_placement_replaced_by_a_reorg_before_its_confirmations_is_not_acted_on(market) -> None:
    (do_a, dp_a), (do_b, dp_b) = market.requests(), market.requests()
    from_block = market.head()
    with RpcFaultProxy(market.w3.provider.endpoint_uri) as proxy, market.mining_paused():

        async def run() -> tuple[int, int]:
            w = watcher_for(proxy.url, market, confirmations=2)
            wait = asyncio.ensure_future(w.wait_order_placed(do_a, from_block))
            await asyncio.sleep(0.5)
            nonce = market.node.nonce
            first_id, _block = await asyncio.to_thread(market.place, do_a, dp_a)
            await asyncio.sleep(0.6)  # the watcher sees the placement, only 0 deep
            assert not wait.done()
            # reorg 1 block: another DO request takes that order id; DO request A's order is re-mined after it
            market.node.nonce = nonce
            raws = [market.node.sign(market.protocol.functions._placeOrder(d, p), GAS)[0] for d, p in
                    ((do_b, dp_b), (do_a, dp_a))]  # fmt: skip
            answer = await asyncio.to_thread(market.rpc, "anvil_reorg", 1, [["0x" + r.hex(), 0] for r in raws])
            assert "error" not in answer, answer
            for _ in range(3):
                await asyncio.to_thread(market.rpc, "evm_mine")
                await asyncio.sleep(0.3)
            try:
                return await asyncio.wait_for(wait, 15), first_id
            finally:
                await stop_watcher(w)

        got, first_id = asyncio.run(run())
    assert got == first_id + 1
    order = market.protocol.functions._getOrder(got).call()
    assert order[2] == do_a  # doRequest of the order the waiter got
