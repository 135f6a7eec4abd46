"""Protocol events and statuses, decoded without web3 (cheap enough for the triggerer's hot loop).

``_orderPlacedEV`` and ``_orderClosedEV`` have no indexed parameters: everything is in ``data``.
"""

from __future__ import annotations

from enum import IntEnum

ADD_DO_REQUEST_TOPIC = "0xeccaef2766efce444edd10aa43fdedc15db863e63aaac53a1325b0e878e6bc7c"
ORDER_PLACED_TOPIC = "0x52ec990a555aaad1a6395f34d1532ac11fa3c72139719d9469c880315c01806d"
ORDER_CLOSED_TOPIC = "0x82c71af4e0a9a239768fac6f9df215013913a0cc66faa82cbc9acd3299b7fc32"


class OrderStatus(IntEnum):
    OPEN = 0
    PROCESSING = 1
    CLOSED = 2
    CANCELED = 3


class RequestStatus(IntEnum):
    AVAILABLE = 0
    BOOKED = 1
    CANCELED = 2


def _words(data: bytes | str) -> list[int]:
    raw = bytes.fromhex(data[2:] if data.startswith("0x") else data) if isinstance(data, str) else bytes(data)
    return [int.from_bytes(raw[i : i + 32], "big") for i in range(0, len(raw) - len(raw) % 32, 32)]


def decode_order_placed(data: bytes | str) -> tuple[int, int, int]:
    """``_orderPlacedEV`` data -> (order id, DO request id, DP request id)."""
    words = _words(data)
    if len(words) < 3:
        raise ValueError("_orderPlacedEV data is shorter than three words")
    return words[0], words[1], words[2]


def decode_order_closed(data: bytes | str) -> int:
    """``_orderClosedEV`` data -> order id."""
    words = _words(data)
    if not words:
        raise ValueError("_orderClosedEV data is empty")
    return words[0]
