"""Benchmark 2: detection latency of ``EthernityTaskCompletedTrigger`` on a devnet with 1 s blocks.

Real hello-world tasks through the requester client and the devnet's node agent: submit, wait for the order,
start the trigger (built from its serialized kwargs, on one event loop in a background thread), approve;
the agent runs the task and closes the order. Submitting and approving run in a child process (as on a
worker), so the "triggerer" process only runs the event loop. Per order: the trigger's event time minus the timestamp of
the block holding ``_orderClosedEV`` (the goal's measure). anvil stamps blocks with whole seconds, so a
block-watching thread (polling anvil every 10 ms) also records when each block really became visible:
the figures from that moment are the watcher's own lag.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from typing import Any

from benchmarks.common import CONN_ID, HELLO, client_for
from benchmarks.stats import median, percentile
from benchmarks.table import Figure

BLOCK_TIME = 1.0
GOAL = BLOCK_TIME + 0.5


class BlockObserver(threading.Thread):
    """Records when each block number first became visible at the node (10 ms polling, its own connection)."""

    def __init__(self, rpc_url: str) -> None:
        super().__init__(name="block-observer", daemon=True)
        from web3 import Web3

        self.w3 = Web3(Web3.HTTPProvider(rpc_url))
        self.first_seen: dict[int, float] = {}
        self.stop_event = threading.Event()

    def run(self) -> None:
        last = -1
        while not self.stop_event.is_set():
            head = self.w3.eth.block_number
            now = time.time()
            for block in range(last + 1, head + 1):
                self.first_seen.setdefault(block, now)
            last = max(last, head)
            self.stop_event.wait(0.01)


class LoopThread:
    """One asyncio event loop in a background thread (the "triggerer")."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="triggerer-loop", daemon=True)
        self.thread.start()

    def submit(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.submit(cancel_all()).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def fire(order_id: int, from_block: int) -> tuple[float, dict[str, Any]]:
    from airflow_provider_ethernity.triggers.ethernity import EthernityTaskCompletedTrigger

    classpath, kwargs = EthernityTaskCompletedTrigger(
        ethernity_conn_id=CONN_ID, order_id=order_id, from_block=from_block, poll_interval=BLOCK_TIME
    ).serialize()
    module, _, name = classpath.rpartition(".")
    trigger = getattr(__import__(module, fromlist=[name]), name)(**json.loads(json.dumps(kwargs)))
    async for event in trigger.run():
        return time.time(), event.payload
    raise RuntimeError("the trigger ended without an event")


def _requester(count: int) -> None:
    """Child process: submit ``count`` tasks; per order print it, wait for "go", approve it."""
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook

    client = EthernityHook().client
    tasks = [client.submit_task(HELLO, resources={"taskPrice": 1}) for _ in range(count)]
    for task in tasks:
        order_id = client.wait_for_order(task, timeout=120, poll_interval=0.2)
        if order_id is None:
            raise SystemExit("no order placed")
        print(json.dumps({"order_id": order_id, "from_block": task.from_block}), flush=True)
        sys.stdin.readline()
        client.approve_order(order_id)
    print(json.dumps({"done": True}), flush=True)


def run(net: Any, smoke: bool = False) -> list[Figure]:
    """``net``: a running devnet with 1 s blocks, registered as ``ethernity_default``."""
    count = 2 if smoke else 10
    client = client_for(net)
    observer = BlockObserver(net.state.rpc_url)
    observer.start()
    loop = LoopThread()
    pending = []
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.latency", "REQUESTER", str(count)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert child.stdin is not None and child.stdout is not None
        for line in child.stdout:
            if not line.startswith("{"):  # a log line
                continue
            message = json.loads(line)
            if message.get("done"):
                break
            future = loop.submit(fire(message["order_id"], message["from_block"]))
            pending.append((message["order_id"], future))
            time.sleep(0.3)  # the trigger is registered before the approval
            child.stdin.write("go\n")
            child.stdin.flush()
        if len(pending) != count:
            raise RuntimeError(f"the requester process placed {len(pending)} of {count} tasks")
        outcomes = [(order_id, future.result(timeout=180)) for order_id, future in pending]
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        loop.stop()
        observer.stop_event.set()
        observer.join(5)
    from_ts, from_seen, offsets, correct = [], [], [], True
    for order_id, (fired_at, payload) in outcomes:
        block = payload.get("block")
        correct &= payload.get("status") == "completed" and payload.get("order_id") == order_id and bool(block)
        stamp = int(client.w3.eth.get_block(block)["timestamp"])
        from_ts.append(fired_at - stamp)
        seen = observer.first_seen.get(block)
        if seen is not None:
            from_seen.append(fired_at - seen)
            offsets.append(seen - stamp)
    return [
        Figure("latency", f"{count} tasks closed, trigger events correct", "yes" if correct else "no", "", "yes",
               correct),
        Figure("latency", "block timestamp -> trigger event, median", round(median(from_ts), 2), "s",
               f"<= {GOAL:g} s", median(from_ts) <= GOAL),
        Figure("latency", "block timestamp -> trigger event, p95", round(percentile(from_ts, 95), 2), "s",
               f"<= {GOAL:g} s", percentile(from_ts, 95) <= GOAL),
        Figure("latency", "block visible -> trigger event, median", round(median(from_seen), 3), "s",
               note="the watcher's own lag"),
        Figure("latency", "block visible -> trigger event, p95", round(percentile(from_seen, 95), 3), "s"),
        Figure("latency", "block timestamp -> block visible at anvil, median", round(median(offsets), 3), "s",
               note="anvil stamps whole seconds"),
    ]  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "REQUESTER":
        import logging

        logging.disable(logging.INFO)
        _requester(int(sys.argv[2]))
