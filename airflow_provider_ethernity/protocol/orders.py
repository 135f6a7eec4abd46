"""Order lookups, the approval and the polling waits of the sync client (a layer of :class:`~.client.EthernityClient`).

Orders are found from ``_orderPlacedEV`` logs (stateless ``eth_getLogs``), with a ``_getOrder`` scan as the
fallback when logs are unavailable; rows are decoded by name (:mod:`.contracts`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from airflow_provider_ethernity.protocol.connection import ClientConnection
from airflow_provider_ethernity.protocol.contracts import DORequestRow, Order
from airflow_provider_ethernity.protocol.errors import ChainError
from airflow_provider_ethernity.protocol.events import (
    ORDER_CLOSED_TOPIC,
    ORDER_PLACED_TOPIC,
    OrderStatus,
    RequestStatus,
    decode_order_closed,
    decode_order_placed,
)

if TYPE_CHECKING:
    from airflow_provider_ethernity.protocol.do_requests import SubmittedTask

#: How far back the ``_getOrder`` fallback scan looks when no anchor is known.
ORDER_SCAN_LIMIT = 256


class OrderReads(ClientConnection):
    """Reads of orders and DO requests, the idempotent order approval, and the polling waits."""

    def get_order(self, order_id: int) -> Order:
        """The ``_getOrder`` row of ``order_id``."""
        return Order.from_row(order_id, self._view_named(self.protocol.functions._getOrder(int(order_id))))

    def get_do_request(self, do_request_id: int) -> DORequestRow:
        """The ``_getDORequest`` row of ``do_request_id``."""
        call = self.protocol.functions._getDORequest(int(do_request_id))
        return DORequestRow.from_row(do_request_id, self._view_named(call))

    def get_order_status(self, order_id: int) -> OrderStatus:
        """OPEN, PROCESSING (approved), CLOSED (result delivered) or CANCELED."""
        return self.get_order(order_id).status

    def get_request_status(self, do_request_id: int) -> RequestStatus:
        """AVAILABLE (no node booked it yet), BOOKED or CANCELED."""
        return self.get_do_request(do_request_id).status

    def orders_count(self) -> int:
        """How many orders the protocol holds (the next order's id)."""
        return int(self._view(self.protocol.functions._getOrdersCount()))

    def find_order(self, do_request_id: int, from_block: int, order_count_anchor: int | None = None) -> int | None:
        """The order placed for a DO request, from ``_orderPlacedEV`` logs (stateless ``eth_getLogs``);
        falls back to scanning ``_getOrder`` when logs are unavailable."""
        try:
            for entry in self._logs(ORDER_PLACED_TOPIC, from_block):
                order_id, do_request, _dp = decode_order_placed(entry["data"])
                if do_request == int(do_request_id):
                    return order_id
            return None
        except Exception as exc:
            self.log.warning("Order log scan failed (%s); scanning orders instead", type(exc).__name__)
        count = self.orders_count()
        floor = order_count_anchor if order_count_anchor is not None else max(0, count - ORDER_SCAN_LIMIT)
        for index in range(count - 1, floor - 1, -1):
            if self.get_order(index).do_request_id == int(do_request_id):
                return index
        return None

    def is_order_closed(self, order_id: int, from_block: int) -> bool:
        """TASK_COMPLETED: ``_orderClosedEV`` for the order, or its status when logs are unavailable."""
        try:
            if any(decode_order_closed(e["data"]) == int(order_id) for e in self._logs(ORDER_CLOSED_TOPIC, from_block)):
                return True
        except Exception as exc:
            self.log.debug("Closed-order log scan failed (%s); probing the order", type(exc).__name__)
        return self.get_order_status(order_id) == OrderStatus.CLOSED

    def get_order_once_approved(self, order_id: int) -> Order:
        """The order of an approval known to be mined: a lagging replica may still show it OPEN, so an OPEN row
        is read again for a few blocks (a row still OPEN after that is returned as it is)."""
        return self._lagging_read(
            lambda: self.get_order(order_id), f"order {order_id} (approved)", lambda o: o.status == OrderStatus.OPEN
        )

    def approve_order(self, order_id: int) -> str | None:
        """Approve an open order; idempotent: an order already approved (or delegated, closed) is left as it is
        and None is returned. Reads are repeated a few times: a lagging replica may not show the order yet."""
        order = self._lagging_read(lambda: self.get_order(order_id), f"order {order_id}")
        if order.status != OrderStatus.OPEN:
            self.log.info("Order %s is %s: no approval needed", order_id, order.status_name)
            return None
        try:
            signed = self.sender.send(self.protocol.functions._approveOrder(int(order_id)), "_approveOrder")
            self.sender.wait_receipt(signed, "_approveOrder")
        except ChainError:
            status = self.get_order_status(order_id)
            if status in (OrderStatus.PROCESSING, OrderStatus.CLOSED):  # approved meanwhile (another try)
                self.log.info("Order %s was approved meanwhile (%s)", order_id, status.name)
                return None
            raise
        self.log.info("Order %s approved (tx %s)", order_id, signed.tx_hash)
        return signed.tx_hash

    # ------------------------------------------------------------------ waiting
    def wait_for_order_id(
        self,
        do_request_id: int,
        from_block: int,
        order_count_anchor: int | None = None,
        *,
        timeout: float,
        poll_interval: float | None = None,
    ) -> int | None:
        """Poll until a node places an order for the DO request; None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        interval = poll_interval or min(self.network.block_time, 2.0)
        while True:
            order_id = self.find_order(do_request_id, from_block, order_count_anchor)
            if order_id is not None:
                return order_id
            if time.monotonic() >= deadline:
                return None
            time.sleep(interval)

    def wait_for_order(self, task: SubmittedTask, timeout: float, poll_interval: float | None = None) -> int | None:
        """:meth:`wait_for_order_id` for what :meth:`~.client.EthernityClient.submit_task` returned."""
        return self.wait_for_order_id(
            task.do_request_id, task.from_block, task.order_count_anchor, timeout=timeout, poll_interval=poll_interval
        )

    def wait_closed(self, order_id: int, from_block: int, timeout: float, poll_interval: float | None = None) -> bool:
        """Poll until TASK_COMPLETED (the order closed); False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        interval = poll_interval or min(self.network.block_time, 2.0)
        while not self.is_order_closed(order_id, from_block):
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True
