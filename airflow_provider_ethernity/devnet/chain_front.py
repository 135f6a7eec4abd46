"""The devnet's chain front: a JSON-RPC endpoint in front of anvil that behaves like a public, load-balanced RPC.

The requester's connection points here when a profile asks for it (``DevnetProfile.chain_front``); the node agent
keeps its own direct RPC, as a real node runs its own. Behaviours (each a knob, changeable while it runs through
the admin methods below):

* **replica lag** (``lag``): ``eth_getLogs`` and ``eth_call`` at ``latest`` are answered by a "replica" ``lag``
  blocks behind the head that ``eth_blockNumber`` reports: logs above it are missing (no error: the client cannot
  tell "no events" from "not indexed yet") and a read right after an event may revert or be stale.
* **hidden closes** (``hide_close_every``): ``_orderClosedEV`` is left out of log answers for orders whose id is a
  multiple of N. Our contract always emits it; on the real networks some terminal states emit nothing, so a
  client must also probe ``_getOrder`` (the runner does every 5th tick).
* **reorgs** (admin ``devnet_reorg``): anvil 1.x ``anvil_reorg`` rolls back ``depth`` blocks and mines new ones;
  the transactions of the removed blocks are re-included in the last new block (as a real chain re-mines them
  from the mempool), so an event the client saw moves to another block, or (``reinclude: false``) vanishes.

Admin methods (JSON-RPC on the same port, never forwarded): ``devnet_setLag [n]``,
``devnet_hideCloses [every, [order ids...]]``, ``devnet_reorg [depth, reinclude?]`` (returns the moved
transaction hashes), ``devnet_frontStats []``.

Run: ``python -m airflow_provider_ethernity.devnet.chain_front --upstream URL --port N [--lag L]
[--hide-close-every K]`` (``ChainFrontProcess`` does this), or in-process with :class:`ChainFront`.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.devnet.child_process import LoopbackChild
from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.rpc_forward import JsonRpcForwarder, block_number_of
from airflow_provider_ethernity.protocol.events import ORDER_CLOSED_TOPIC

log = logging.getLogger("ethernity.devnet.chain_front")

LAGGED_READS = ("eth_getLogs", "eth_call")
_EMPTY: list[Any] = []  # sentinel: a log query entirely above the replica


class ChainFront(JsonRpcForwarder):
    upstream_timeout = 120.0
    thread_name = "chain-front"

    def __init__(self, upstream_url: str, *, port: int = 0, lag: int = 0, hide_close_every: int = 0) -> None:
        super().__init__(upstream_url, port=port)
        self.lag = lag
        self.hide_close_every = hide_close_every
        self.hidden_orders: set[int] = set()
        self.stats: Counter[str] = Counter()

    # ------------------------------------------------------------------ behaviours
    def reorg(self, depth: int, reinclude: bool = True) -> list[str]:
        """Roll back ``depth`` blocks; re-include their transactions in the last new block. Returns their hashes."""
        if depth < 1:
            raise ValueError("depth must be at least 1")
        head = int(self.rpc("eth_blockNumber"), 16)
        moved: list[tuple[str, str]] = []
        for number in range(max(1, head - depth + 1), head + 1):
            block = self.rpc("eth_getBlockByNumber", [hex(number), False]) or {}
            for tx_hash in block.get("transactions", []):
                moved.append((tx_hash, self.rpc("eth_getRawTransactionByHash", [tx_hash])))
        pairs = [[raw, depth - 1] for _hash, raw in moved] if reinclude else []
        self.rpc("anvil_reorg", [depth, pairs])
        with self._lock:
            self.stats["reorgs"] += 1
        log.info("reorg of depth %s at head %s: %s transaction(s) %s", depth, head, len(moved),
                 "re-included" if reinclude else "dropped")  # fmt: skip
        return [tx_hash for tx_hash, _raw in moved]

    def _hidden(self, entry: dict[str, Any]) -> bool:
        topics = entry.get("topics") or []
        if not topics or topics[0].lower() != ORDER_CLOSED_TOPIC.lower():
            return False
        order_id = int(entry.get("data", "0x0")[:66], 16)
        every = self.hide_close_every
        return order_id in self.hidden_orders or bool(every and order_id % every == 0)

    def _lagged(self, method: str, params: list[Any]) -> list[Any] | None:
        """The params of a read answered by the lagging replica, or None when it is served as is."""
        head = int(self.rpc("eth_blockNumber"), 16)
        replica = max(0, head - self.lag)
        if method == "eth_call":
            block = params[1] if len(params) > 1 else "latest"
            if block not in ("latest", None):
                return None
            return [params[0], hex(replica), *params[2:]]
        query = dict(params[0] if params else {})
        if "blockHash" in query:
            return None
        high = block_number_of(query.get("toBlock", "latest"), head)
        low = block_number_of(query.get("fromBlock", "latest"), head)
        if high <= replica:
            return None
        if low > replica:
            return _EMPTY  # the whole range is above the replica: no logs yet
        query["toBlock"] = hex(replica)
        return [query]

    def answer(self, body: bytes, content_type: str) -> tuple[int, bytes]:
        try:
            call = json.loads(body)
            own = self.answer_call(call) if isinstance(call, dict) else None
        except (ValueError, RuntimeError) as exc:
            error = {"code": -32000, "message": str(exc)}
            return 200, json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()
        return (200, json.dumps(own).encode()) if own is not None else self.forward(body, content_type)

    def answer_call(self, call: dict[str, Any]) -> dict[str, Any] | None:
        """The answer the front gives itself, or None to forward the call unchanged."""
        method = str(call.get("method", "?"))
        params = list(call.get("params") or [])
        reply: Callable[[Any], dict[str, Any]] = lambda result: {  # noqa: E731
            "jsonrpc": "2.0",
            "id": call.get("id"),
            "result": result,
        }
        if method.startswith("devnet_"):
            return reply(self._admin(method, params))
        lagged = self._lagged(method, params) if self.lag and method in LAGGED_READS else None
        hide = method == "eth_getLogs" and (self.hide_close_every or self.hidden_orders)
        if lagged is None and not hide:
            return None
        with self._lock:
            self.stats["lagged"] += lagged is not None
        if lagged is _EMPTY:
            return reply([])
        body = json.dumps({"jsonrpc": "2.0", "id": call.get("id"), "method": method,
                           "params": lagged if lagged is not None else params}).encode()  # fmt: skip
        answer = json.loads(self.forward(body)[1])
        if hide and isinstance(answer.get("result"), list):
            kept = [entry for entry in answer["result"] if not self._hidden(entry)]
            with self._lock:
                self.stats["hidden"] += len(answer["result"]) - len(kept)
            answer["result"] = kept
        return answer

    def _admin(self, method: str, params: list[Any]) -> Any:
        if method == "devnet_setLag":
            self.lag = int(params[0])
            return self.lag
        if method == "devnet_hideCloses":
            self.hide_close_every = int(params[0]) if params else 0
            self.hidden_orders = {int(i) for i in (params[1] if len(params) > 1 else [])}
            return True
        if method == "devnet_reorg":
            return self.reorg(int(params[0]), bool(params[1]) if len(params) > 1 else True)
        if method == "devnet_frontStats":
            return {"lag": self.lag, "hide_close_every": self.hide_close_every, **self.stats}
        raise ValueError(f"unknown admin method {method}")


def admin(front_url: str, method: str, *params: Any, timeout: float = 60.0) -> Any:
    """Call one of the front's admin methods (``devnet_reorg``, ``devnet_setLag``, ...)."""
    import httpx

    answer = httpx.post(front_url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)},
                        timeout=timeout).json()  # fmt: skip
    if "error" in answer:
        raise DevnetError(f"{method}: {answer['error']}")
    return answer["result"]


class ChainFrontProcess(LoopbackChild):
    """The chain front as a child process in its own session (what ``Devnet`` starts)."""

    log_name = "chain-front.log"
    what = "the chain front"

    def __init__(self, workdir: str | Path, upstream_url: str, *, lag: int = 0, hide_close_every: int = 0) -> None:
        super().__init__(workdir)
        self.upstream_url = upstream_url
        self.lag = lag
        self.hide_close_every = hide_close_every

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", __name__, "--upstream", self.upstream_url, "--port", str(port),
                "--lag", str(self.lag), "--hide-close-every", str(self.hide_close_every)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lag", type=int, default=0)
    parser.add_argument("--hide-close-every", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    front = ChainFront(args.upstream, port=args.port, lag=args.lag, hide_close_every=args.hide_close_every)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    front.start()
    log.info("chain front on %s -> %s (lag %s, hide closes every %s)", front.url, args.upstream, args.lag,
             args.hide_close_every)  # fmt: skip
    stop.wait()
    front.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
