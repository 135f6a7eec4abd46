"""The protocol's contracts as the client and the async reader see them: factories, typed rows, one log filter.

Rows of the protocol's views are decoded by the output names of their ABI (``downer``, ``status``, ...), never
by position, into frozen dataclasses; the sync client (:mod:`.client`) and the triggerer's reader
(:mod:`.async_client`) share these, so a row is decoded one way only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_ethernity.protocol.abi import load_abi
from airflow_provider_ethernity.protocol.errors import ConfigurationError
from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus


def contract_at(eth: Any, address: str | None, abi_name: str, label: str, where: str) -> Any:
    """A contract object (sync ``Eth`` or ``AsyncEth``) of the shipped ABI ``abi_name`` at ``address``;
    ConfigurationError naming ``label`` and ``where`` (e.g. "network 'devnet'") when the address is unset."""
    if not address:
        raise ConfigurationError(f"{label} is not set for {where}")
    return eth.contract(address=address, abi=load_abi(abi_name))


def log_filter(address: str | None, topic: str | list[str], from_block: int, to_block: int | str) -> dict[str, Any]:
    """The ``eth_getLogs`` filter of the protocol contract's events ``topic`` (one topic or any of a list)."""
    return {"address": address, "fromBlock": int(from_block), "toBlock": to_block, "topics": [topic]}


def named_outputs(function_abi: Mapping[str, Any], row: Any) -> dict[str, Any]:
    """A view's answer as {output name: value} (one output comes back bare, several as a tuple)."""
    names = [o["name"] for o in function_abi.get("outputs", [])]
    values = list(row) if len(names) != 1 else [row]
    return dict(zip(names, values, strict=True))


@dataclass(frozen=True)
class EnclaveDetails:
    """The image registry's latest entry for a trustedzone (``getLatestTrustedZoneImageCertPublicKey``)."""

    image_cid: str
    certificate_pem: str
    compose_cid: str

    @classmethod
    def from_row(cls, row: Sequence[str]) -> EnclaveDetails:
        """Its three outputs are unnamed in the ABI: image CID, certificate, compose CID."""
        image_cid, certificate_pem, compose_cid = row
        return cls(image_cid, certificate_pem, compose_cid)


@dataclass(frozen=True)
class Order:
    """One row of ``_getOrder``."""

    order_id: int
    downer: str
    dproc: str
    do_request_id: int
    dp_request_id: int
    status: OrderStatus

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", OrderStatus(int(self.status)))

    @property
    def status_name(self) -> str:
        return self.status.name

    @classmethod
    def from_row(cls, order_id: int, row: Mapping[str, Any]) -> Order:
        """From ``_getOrder``'s outputs by name."""
        return cls(
            int(order_id),
            row["downer"],
            row["dproc"],
            int(row["doRequest"]),
            int(row["dpRequest"]),
            OrderStatus(int(row["status"])),
        )


@dataclass(frozen=True)
class DORequestRow:
    """One row of ``_getDORequest``: a requester's DO request (resources, price, status)."""

    do_request_id: int
    downer: str
    cpu: int
    memory: int
    storage: int
    bandwidth: int
    duration: int
    max_price: int
    status: RequestStatus

    @classmethod
    def from_row(cls, do_request_id: int, row: Mapping[str, Any]) -> DORequestRow:
        """From ``_getDORequest``'s outputs by name."""
        return cls(
            int(do_request_id),
            row["downer"],
            int(row["cpuRequest"]),
            int(row["memoryRequest"]),
            int(row["storageRequest"]),
            int(row["bandwidthRequest"]),
            int(row["duration"]),
            int(row["maxPrice"]),
            RequestStatus(int(row["status"])),
        )
