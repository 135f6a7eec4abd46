"""Benchmark 1: N real ``EthernityTaskCompletedTrigger`` instances waiting in ONE event loop, as a triggerer runs them.

Per N: N approved orders are created on the devnet chain (see :mod:`benchmarks.orders`), N triggers are
built from their serialized kwargs (classpath + kwargs, as the triggerer does) and run as tasks on one loop,
their RPC going through a counting proxy in front of anvil. Then the orders close over time (pre-signed
``_addResultToOrder`` transactions sent from a thread) while 1 s blocks are mined.

Measured: HTTP requests the triggers' process sends per new block (at the proxy), memory added per waiting
trigger (tracemalloc while they are created and registered; RSS delta as a cross-check), CPU time of the
event loop's thread, and each order's detection delay (trigger event time minus the timestamp of the block
holding its ``_orderClosedEV``; anvil's timestamps are whole seconds, so this reads up to 1 s high).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
import tracemalloc
from typing import Any

from benchmarks.common import current_rss_bytes
from benchmarks.orders import OrderFactory, send_raw_over_time
from benchmarks.rpc_proxy import CountingRpcProxy
from benchmarks.stats import median, percentile
from benchmarks.table import Figure

CONN_ID = "ethernity_bench_proxy"
POLL_INTERVAL = 1.0


def _import(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


async def _measure(order_ids: list[int], from_block: int, raws: list[bytes], anvil_url: str,
                   close_seconds: float, proxy: CountingRpcProxy) -> dict[str, Any]:  # fmt: skip
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook
    from airflow_provider_ethernity.protocol.async_client import AsyncChainReader
    from airflow_provider_ethernity.protocol.watcher import get_watcher
    from airflow_provider_ethernity.triggers.ethernity import EthernityTaskCompletedTrigger

    settings = await EthernityHook.aget_reader_settings(CONN_ID)
    address = settings.network.protocol_address or ""
    watcher = get_watcher(settings.rpc_url, address, lambda: AsyncChainReader(settings.rpc_url, address), POLL_INTERVAL)
    await watcher.reader.block_number()  # the shared reader exists before the baseline (it is not per trigger)
    n = len(order_ids)
    events: dict[int, tuple[float, dict[str, Any]]] = {}

    async def consume(trigger: Any) -> None:
        async for event in trigger.run():
            events[trigger.order_id] = (time.time(), event.payload)
            return

    gc.collect()
    rss_before = current_rss_bytes()
    tracemalloc.start()
    tasks = []
    for order_id in order_ids:
        classpath, kwargs = EthernityTaskCompletedTrigger(
            ethernity_conn_id=CONN_ID, order_id=order_id, from_block=from_block, poll_interval=POLL_INTERVAL
        ).serialize()
        trigger = _import(classpath)(**json.loads(json.dumps(kwargs)))  # as stored in the metadata DB
        tasks.append(asyncio.create_task(consume(trigger)))
    while watcher.waiting < n:
        await asyncio.sleep(0.02)
    traced = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_after = current_rss_bytes()
    await asyncio.sleep(2.5)  # the first ticks (catch-up from from_block) are done; count from here

    head_start = await watcher.reader.block_number()
    requests_start, calls_start = proxy.snapshot()
    watcher_start = dict(watcher.rpc_calls)
    cpu_start, wall_start = time.thread_time(), time.perf_counter()
    stop = threading.Event()
    closer = asyncio.create_task(asyncio.to_thread(send_raw_over_time, anvil_url, raws, close_seconds, stop))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=close_seconds + 120)
    finally:
        stop.set()
    cpu, wall = time.thread_time() - cpu_start, time.perf_counter() - wall_start
    requests_end, calls_end = proxy.snapshot()
    head_end = await watcher.reader.block_number()
    await closer
    return {
        "events": events,
        "traced_bytes": traced,
        "rss_bytes": rss_after - rss_before,
        "blocks": head_end - head_start,
        "http_requests": requests_end - requests_start,
        "calls": {k: calls_end.get(k, 0) - calls_start.get(k, 0) for k in calls_end},
        "watcher_calls": {k: watcher.rpc_calls[k] - watcher_start.get(k, 0) for k in watcher.rpc_calls},
        "cpu_s": cpu,
        "wall_s": wall,
    }


def measure_n(net: Any, factory: OrderFactory, proxy: CountingRpcProxy, n: int, close_seconds: float) -> dict:
    batch = factory.create(n)
    raws = factory.sign_closes(batch.order_ids)
    out = asyncio.run(_measure(batch.order_ids, batch.from_block, raws, net.state.rpc_url, close_seconds, proxy))
    closed = factory.close_blocks(batch.from_block)
    stamps = factory.block_timestamps({closed[o] for o in batch.order_ids if o in closed})
    delays = [t - stamps[closed[o]] for o, (t, _p) in out["events"].items() if o in closed]
    out["correct"] = sorted(out["events"]) == sorted(batch.order_ids) and all(
        p == {"status": "completed", "order_id": o, "block": closed.get(o)} for o, (_t, p) in out["events"].items()
    )
    out["delays"] = delays
    return out


def run(net: Any, smoke: bool = False) -> list[Figure]:
    """``net``: a running devnet with 1 s blocks."""
    sizes = [5] if smoke else [10, 100, 1000]
    factory = OrderFactory(net.state.rpc_url, net.state, net.requester_key)
    figures: list[Figure] = []
    net.set_agent(mode="idle")
    try:
        with CountingRpcProxy(net.state.rpc_url) as proxy:
            conn = json.loads(net.connection_json())
            conn["extra"]["rpc_url"] = proxy.url
            os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)
            for n in sizes:
                close_seconds = 4.0 if smoke else {10: 8.0, 100: 12.0}.get(n, 20.0)
                m = measure_n(net, factory, proxy, n, close_seconds)
                figures += _figures(n, m)
    finally:
        os.environ.pop(f"AIRFLOW_CONN_{CONN_ID.upper()}", None)
        net.set_agent()
    return figures


def _figures(n: int, m: dict[str, Any]) -> list[Figure]:
    blocks = max(1, m["blocks"])
    per_block = m["http_requests"] / blocks
    kb = m["traced_bytes"] / n / 1024
    delays = m["delays"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(m["calls"].items()) if v)
    name = f"triggerer N={n}"
    return [
        Figure(name, "all triggers fired, right orders and blocks", "yes" if m["correct"] else "no", "", "yes",
               bool(m["correct"])),
        Figure(name, "RPC requests per new block (HTTP, at the proxy)", round(per_block, 2), "", "<= 3",
               per_block <= 3, f"{m['http_requests']} requests over {m['blocks']} blocks: {calls}"),
        Figure(name, "same with N independent pollers (computed)", round(n * POLL_INTERVAL / 1.0 + 1, 1), "",
               note=f"N x one eth_getLogs per {POLL_INTERVAL:g} s poll + one eth_blockNumber, 1 s blocks"),
        Figure(name, "memory per waiting trigger (tracemalloc)", round(kb, 1), "KB", "<= 30 KB", kb <= 30,
               f"RSS delta {m['rss_bytes'] / n / 1024:.1f} KB per trigger"),
        Figure(name, "event loop CPU time while waiting", round(m["cpu_s"], 2), "s",
               note=f"over {m['wall_s']:.1f} s wall, {m['cpu_s'] / blocks * 1000:.1f} ms per block"),
        Figure(name, "detection delay from block timestamp, median", round(median(delays), 2), "s"),
        Figure(name, "detection delay from block timestamp, p95", round(percentile(delays, 95), 2), "s"),
    ]  # fmt: skip
