"""Many real orders on the devnet chain, fast: the lighter way the triggerer benchmark creates and closes them.

The node agent places and runs orders one by one (two mined transactions per order), which for a thousand
orders on 1 s blocks takes too long. Here the benchmark plays both sides with raw, pre-signed transactions
sent in batches (many per block): the requester's ``_addDORequest`` and ``_approveOrder``, a second node
wallet's ``_addDPRequest``, ``_placeOrder`` and, later and over time, ``_addResultToOrder`` (which emits
``_orderClosedEV``). Same contract, same events, same chain as a real run; only the enclave work is skipped
(the triggers only watch the close). The devnet's agent is set "idle" meanwhile so it takes none of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from airflow_provider_ethernity.protocol.abi import PROTOCOL, TOKEN, load_abi
from airflow_provider_ethernity.protocol.events import (
    ORDER_CLOSED_TOPIC,
    ORDER_PLACED_TOPIC,
    decode_order_closed,
    decode_order_placed,
)

#: anvil's well-known development key #3 (public, from its test mnemonic): the benchmark's node wallet.
BENCH_NODE_KEY = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6"
RESOURCES = (1, 1, 1, 1, 1, 1, 1)  # cpu, memory, storage, bandwidth, duration, validators, taskPrice


class Sender:
    """Signs with one key and sends raw transactions with consecutive nonces (no waiting in between)."""

    def __init__(self, w3: Any, key: str) -> None:
        from eth_account import Account

        self.w3 = w3
        self.account = Account.from_key(key)
        self.nonce = w3.eth.get_transaction_count(self.account.address, "pending")
        self.chain_id = w3.eth.chain_id
        self.gas_price = w3.eth.gas_price * 2

    def sign(self, call: Any, gas: int) -> tuple[bytes, str]:
        tx = call.build_transaction(
            {
                "from": self.account.address,
                "nonce": self.nonce,
                "gas": gas,
                "gasPrice": self.gas_price,
                "chainId": self.chain_id,
            }
        )
        self.nonce += 1
        signed = self.account.sign_transaction(tx)
        return bytes(signed.raw_transaction), "0x" + bytes(signed.hash).hex()

    def send_all(self, calls: list[Any], gas: int) -> list[str]:
        hashes = []
        for call in calls:
            raw, tx_hash = self.sign(call, gas)
            self.w3.eth.send_raw_transaction(raw)
            hashes.append(tx_hash)
        return hashes

    def estimate(self, call: Any) -> int:
        return int(call.estimate_gas({"from": self.account.address}) * 1.3) + 10_000


def wait_mined(w3: Any, tx_hashes: list[str], timeout: float = 300) -> None:
    """Wait until every transaction is mined and succeeded (checks the last, then all)."""
    deadline = time.monotonic() + timeout
    for tx_hash in (tx_hashes[-1:] + tx_hashes) if tx_hashes else []:
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=max(1, deadline - time.monotonic()))
        if receipt["status"] != 1:
            raise RuntimeError(f"benchmark transaction {tx_hash} reverted")


@dataclass
class OrderBatch:
    order_ids: list[int]
    from_block: int


class OrderFactory:
    """Creates approved (PROCESSING) orders and closes them later; ``rpc_url`` is anvil itself."""

    def __init__(self, rpc_url: str, state: Any, requester_key: str) -> None:
        from web3 import Web3

        self.w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 60}))
        self.protocol = self.w3.eth.contract(address=state.protocol_address, abi=load_abi(PROTOCOL))
        self.token = self.w3.eth.contract(address=state.token_address, abi=load_abi(TOKEN))
        self.requester = Sender(self.w3, requester_key)
        self.node = Sender(self.w3, BENCH_NODE_KEY)
        self.protocol_address = state.protocol_address

    def _phase(self, sender: Sender, calls: list[Any], gas: int) -> None:
        wait_mined(self.w3, sender.send_all(calls, gas))

    def create(self, count: int) -> OrderBatch:
        """``count`` orders, approved, waiting for their result (status PROCESSING)."""
        from_block = self.w3.eth.block_number
        approve = self.token.functions.approve(self.protocol_address, count * 10**18)
        self._phase(self.requester, [approve], self.requester.estimate(approve))
        do_first = int(self.protocol.functions._getDORequestsCount().call())
        add_do = self.protocol.functions._addDORequest(*RESOURCES, "v3:bench", "v3:bench", "v3:bench", "")
        self._phase(self.requester, [add_do] * count, self.requester.estimate(add_do))
        dp_first = int(self.protocol.functions._getDPRequestsCount().call())
        add_dp = self.protocol.functions._addDPRequest(255, 255, 255, 255, 65535, 0, "bench", "", "", "")
        self._phase(self.node, [add_dp] * count, self.node.estimate(add_dp))
        place = [self.protocol.functions._placeOrder(do_first + i, dp_first + i) for i in range(count)]
        self._phase(self.node, place, self.node.estimate(place[0]))
        placed = self.placed_since(from_block)
        order_ids = [placed[do_first + i] for i in range(count)]
        approvals = [self.protocol.functions._approveOrder(o) for o in order_ids]
        self._phase(self.requester, approvals, self.requester.estimate(approvals[0]))
        return OrderBatch(order_ids, from_block)

    def _protocol_logs(self, topic: str, from_block: int) -> list[Any]:
        query = {"address": self.protocol_address, "fromBlock": from_block, "toBlock": "latest", "topics": [topic]}
        return list(self.w3.eth.get_logs(query))

    def placed_since(self, from_block: int) -> dict[int, int]:
        """DO request id -> order id of every ``_orderPlacedEV`` since ``from_block``."""
        logs = self._protocol_logs(ORDER_PLACED_TOPIC, from_block)
        return {decode_order_placed(e["data"])[1]: decode_order_placed(e["data"])[0] for e in logs}

    def sign_closes(self, order_ids: list[int]) -> list[bytes]:
        """Pre-signed ``_addResultToOrder`` transactions (sending them later costs this process little CPU)."""
        calls = [self.protocol.functions._addResultToOrder(o, f"v3:bench:{o}") for o in order_ids]
        gas = self.node.estimate(calls[0])
        return [self.node.sign(call, gas)[0] for call in calls]

    def close_blocks(self, from_block: int) -> dict[int, int]:
        """Order id -> block of its ``_orderClosedEV`` since ``from_block``."""
        logs = self._protocol_logs(ORDER_CLOSED_TOPIC, from_block)
        return {decode_order_closed(e["data"]): int(e["blockNumber"]) for e in logs}

    def block_timestamps(self, blocks: set[int]) -> dict[int, int]:
        return {b: int(self.w3.eth.get_block(b)["timestamp"]) for b in sorted(blocks)}


def send_raw_over_time(rpc_url: str, raws: list[bytes], seconds: float, stop: Any = None) -> None:
    """Send pre-signed transactions spread evenly over ``seconds`` (plain HTTP, little CPU)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(rpc_url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    started = time.monotonic()
    for index, raw in enumerate(raws):
        due = started + seconds * index / max(1, len(raws))
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if stop is not None and stop.is_set():
            break
        body = json.dumps(
            {"jsonrpc": "2.0", "id": index, "method": "eth_sendRawTransaction", "params": ["0x" + raw.hex()]}
        )
        conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        if "error" in answer:
            raise RuntimeError(f"close transaction refused: {answer['error']}")
    conn.close()
