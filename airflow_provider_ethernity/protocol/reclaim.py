"""Find this wallet's escrow that no live task holds: cancel what can be cancelled, report the rest.

A DO request escrows its price when it is created. The escrow comes back only by ``_cancelDORequest``, which
the contract allows while no node booked the request (AVAILABLE). Once a node placed an order, the escrow
goes to the node when the order closes; an order placed and never approved keeps it locked (the protocol has
no way to cancel an order): such orders are reported, never approved behind the user's back.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus

if TYPE_CHECKING:
    from airflow_provider_ethernity.protocol.client import EthernityClient


@dataclass(frozen=True)
class EscrowEntry:
    """One DO request of the wallet whose escrow is not settled."""

    do_request_id: int
    price: int  # whole tokens
    request_status: RequestStatus
    order_id: int | None = None
    order_status: OrderStatus | None = None
    action: str = ""

    @property
    def locked(self) -> bool:
        """Escrow that stays where it is after this reclaim."""
        return not self.action.startswith(("cancelled", "would cancel"))


@dataclass
class ReclaimReport:
    token: str
    entries: list[EscrowEntry] = field(default_factory=list)

    @property
    def returned(self) -> int:
        return sum(e.price for e in self.entries if e.action.startswith("cancelled"))

    @property
    def still_locked(self) -> int:
        return sum(e.price for e in self.entries if e.locked)

    def render(self) -> str:
        lines = [
            f"DO request {e.do_request_id}: {e.price} {self.token} in escrow, request {e.request_status.name}"
            + (f", order {e.order_id} {e.order_status.name}" if e.order_status is not None else "")
            + f": {e.action}"
            for e in self.entries
        ]
        lines.append(
            f"{len(self.entries)} unsettled request(s): {self.returned} {self.token} returned, "
            f"{self.still_locked} {self.token} still in escrow"
        )
        return "\n".join(lines)


def reclaim(client: EthernityClient, held: Iterable[int] = (), *, dry_run: bool = False) -> ReclaimReport:
    """Walk the wallet's DO requests; cancel the AVAILABLE ones not in ``held`` (unless ``dry_run``)."""
    held_ids = {int(i) for i in held}
    protocol = client.protocol
    requests = client._rpc(lambda: protocol.functions._getMyDORequests().call({"from": client.address}))
    orders = client._rpc(lambda: protocol.functions._getMyDOOrders().call({"from": client.address}))
    order_of: dict[int, int] = {}
    for order_id in orders:
        order_of[client.get_order(int(order_id)).do_request_id] = int(order_id)
    report = ReclaimReport(token=client.network.token_name)
    for do_request_id in (int(r) for r in requests):
        row = client.get_do_request(do_request_id)
        status, price = row.status, row.max_price
        if status is RequestStatus.CANCELED:
            continue
        if status is RequestStatus.AVAILABLE:
            if do_request_id in held_ids:
                action = "held by a live task: left alone"
            elif dry_run:
                action = "would cancel (escrow back)"
            else:
                action = "cancelled, escrow returned" if client.cancel_task(do_request_id) else "booked meanwhile"
            report.entries.append(EscrowEntry(do_request_id, price, status, action=action))
            continue
        order_id = order_of.get(do_request_id)
        order = client.get_order(order_id) if order_id is not None else None
        order_status = order.status if order is not None else None
        if order_status is OrderStatus.CLOSED:
            continue  # settled: the node was paid
        if order_status is OrderStatus.OPEN:
            action = (
                "held by a live task (it approves the order)"
                if do_request_id in held_ids
                else "order placed and never approved: the escrow stays locked (approving lets the node run the "
                "task and be paid)"
            )
        elif order_status is OrderStatus.PROCESSING:
            action = "approved, in progress: the node is paid when it delivers"
        else:
            action = "booked, order not found"
        report.entries.append(EscrowEntry(do_request_id, price, status, order_id, order_status, action))
    return report
