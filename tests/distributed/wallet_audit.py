"""What one wallet really sent during a run, read from the chain and from a counting RPC proxy.

* ``WalletAudit``: the wallet's nonce delta (every transaction it signed and got mined, reverted or not), its
  mined transactions by contract method, reverted receipts, and the gas they used, between two points.
* ``SendLog``: the outcome of every ``eth_sendRawTransaction`` that went through the proxy (the provider's
  RPC URL points at it), so a nonce collision between machines ("nonce too low", "already known",
  "replacement transaction underpriced") is counted even though the transaction layer resolves it silently
  (its ``NonceTakenError`` is logged at debug level only).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from benchmarks.rpc_proxy import CountingRpcProxy

COLLISION_PHRASES = ("nonce too low", "already known", "replacement transaction underpriced", "nonce too high")


class SendLog(CountingRpcProxy):
    """A counting RPC proxy that also records the node's answer to every raw transaction sent through it."""

    def __init__(self, upstream_url: str) -> None:
        super().__init__(upstream_url)
        self.sends = 0
        self.send_errors: Counter[str] = Counter()
        self._send_lock = threading.Lock()

    def forward(self, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
        status, answer = super().forward(body, content_type)
        if b"eth_sendRawTransaction" in body:
            self._record(body, answer)
        return status, answer

    def _record(self, body: bytes, answer: bytes) -> None:
        try:
            request, response = json.loads(body), json.loads(answer)
        except ValueError:
            return
        requests = request if isinstance(request, list) else [request]
        responses = {r.get("id"): r for r in (response if isinstance(response, list) else [response])}
        with self._send_lock:
            for call in requests:
                if call.get("method") != "eth_sendRawTransaction":
                    continue
                self.sends += 1
                error = (responses.get(call.get("id")) or {}).get("error")
                if error:
                    message = str(error.get("message", error)).lower()
                    kind = next((p for p in COLLISION_PHRASES if p in message), message[:80])
                    self.send_errors[kind] += 1

    def collisions(self) -> int:
        with self._send_lock:
            return sum(n for kind, n in self.send_errors.items() if kind in COLLISION_PHRASES)

    def summary(self) -> dict[str, Any]:
        with self._send_lock:
            return {"raw sends": self.sends, "send errors": dict(self.send_errors)}


@dataclass
class WalletAudit:
    """``audit = WalletAudit(w3, addresses)`` before the run, ``audit.finish()`` after it."""

    w3: Any
    addresses: list[str]
    start_block: int = 0
    start_nonces: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.addresses = [self.w3.to_checksum_address(a) for a in self.addresses]
        self.start_block = int(self.w3.eth.block_number)
        self.start_nonces = {a: int(self.w3.eth.get_transaction_count(a, "latest")) for a in self.addresses}

    def finish(self, selectors: dict[bytes, str] | None = None) -> dict[str, Any]:
        """Nonce delta, mined transactions by method, reverted ones and gas, since the start."""
        end = int(self.w3.eth.block_number)
        ours = {a.lower() for a in self.addresses}
        methods: Counter[str] = Counter()
        reverted: list[str] = []
        gas = 0
        mined = 0
        for number in range(self.start_block + 1, end + 1):
            block = self.w3.eth.get_block(number, full_transactions=True)
            for tx in block["transactions"]:
                if str(tx["from"]).lower() not in ours:
                    continue
                mined += 1
                receipt = self.w3.eth.get_transaction_receipt(tx["hash"])
                gas += int(receipt["gasUsed"])
                data = bytes(tx["input"])[:4]
                methods[(selectors or {}).get(data, "0x" + data.hex())] += 1
                if receipt["status"] != 1:
                    reverted.append("0x" + bytes(tx["hash"]).hex())
        nonce_delta = sum(int(self.w3.eth.get_transaction_count(a, "latest")) - n for a, n in self.start_nonces.items())
        self.report = {
            "nonce delta": nonce_delta,
            "mined": mined,
            "by method": dict(methods),
            "reverted": reverted,
            "gas used": gas,
            "wallets used": sum(
                1 for a, n in self.start_nonces.items() if int(self.w3.eth.get_transaction_count(a, "latest")) > n
            ),
        }
        return self.report


def selectors(*contracts: Any) -> dict[bytes, str]:
    """4-byte selector -> function name for the given web3 contracts."""
    from eth_utils import function_abi_to_4byte_selector

    names: dict[bytes, str] = {}
    for contract in contracts:
        for item in contract.abi:
            if item.get("type") == "function":
                names[bytes(function_abi_to_4byte_selector(item))] = item["name"]
    return names
