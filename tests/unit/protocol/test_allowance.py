"""The allowance step before a DO request: raised by the shortfall with ``increaseAllowance`` (an addition two
machines of one wallet cannot overwrite), ``approve`` for a token without it. The devnet's tokens have it, so
the fallback is exercised here; the happy path runs on the devnet (tests/integration)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_ethernity.protocol.client import EthernityClient
from airflow_provider_ethernity.protocol.errors import ChainError
from airflow_provider_ethernity.protocol.settings import ClientSettings

ADDR = "0x" + "22" * 20
KEY = "0x" + "11" * 32
TOKEN = 10**18


class Sender:
    def __init__(self, refuse: dict[str, str]) -> None:
        self.refuse, self.sent, self.records = refuse, [], []

    def send(self, call: tuple[str, int], label: str, record: Any = None) -> Any:
        if call[0] in self.refuse:
            raise ChainError(f"{label} {self.refuse[call[0]]}")
        self.sent.append(call)
        self.records.append(record)
        return SimpleNamespace(tx_hash=f"0x{len(self.sent):064x}")

    def wait_receipt(self, signed: Any, label: str) -> dict:
        return {"status": 1}


def client(allowance: int, refuse: dict[str, str] | None = None) -> tuple[EthernityClient, Sender]:
    settings = ClientSettings.build("devnet", private_key=KEY, rpc_url="http://127.0.0.1:1", protocol_address=ADDR,
                                    image_registry_address=ADDR, token_address="0x" + "33" * 20)  # fmt: skip
    built = EthernityClient(settings)
    sender = Sender(refuse or {})
    functions = SimpleNamespace(
        increaseAllowance=lambda spender, amount: ("increaseAllowance", amount),
        approve=lambda spender, amount: ("approve", amount),
    )
    built.__dict__.update(token=SimpleNamespace(functions=functions), sender=sender)
    built.allowance = lambda block="latest": allowance  # type: ignore[method-assign]
    return built, sender


def test_an_allowance_that_covers_the_price_sends_nothing() -> None:
    built, sender = client(allowance=10 * TOKEN)
    assert built.ensure_allowance(10 * TOKEN) is None and sender.sent == []


def test_a_short_allowance_is_raised_by_the_shortfall_only() -> None:
    """Alone, the allowance ends at exactly the price (least privilege, as the official runner's approve)."""
    built, sender = client(allowance=3 * TOKEN)
    record = object()
    assert built.ensure_allowance(10 * TOKEN, record) == f"0x{1:064x}"  # type: ignore[arg-type]
    assert sender.sent == [("increaseAllowance", 7 * TOKEN)] and sender.records == [record]


def test_a_token_without_increase_allowance_is_approved_the_price() -> None:
    built, sender = client(allowance=0, refuse={"increaseAllowance": "would revert: execution reverted"})
    assert built.ensure_allowance(10 * TOKEN) is not None
    assert sender.sent == [("approve", 10 * TOKEN)]


def test_any_other_refusal_is_raised_and_nothing_else_is_sent() -> None:
    built, sender = client(allowance=0, refuse={"increaseAllowance": "rejected by the node: fee cap too low"})
    with pytest.raises(ChainError, match="fee cap too low"):
        built.ensure_allowance(10 * TOKEN)
    assert sender.sent == []
