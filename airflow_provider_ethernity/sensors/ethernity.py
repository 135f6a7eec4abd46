"""EthernityTaskSensor: wait for TASK_COMPLETED of an order and return its verified, decrypted result."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.protocol.errors import TaskFailedError

if TYPE_CHECKING:
    from airflow.sdk import Context


class EthernityTaskSensor(BaseSensorOperator):
    """Wait until an order's task completed (the order closed on chain), then return its result value.

    Typically downstream of ``EthernityRunTaskOperator(wait_for_completion=False)``: pass
    ``submit_task_id`` and the sensor pulls ``order_id``, ``challenge`` and ``from_block`` from that task's
    XCom, or pass them (templated) yourself. The result is fetched, verified (order, contract, chain, enclave
    signer, checksum) and decrypted with the connection's key; only the value reaches XCom.

    :param order_id: the order to wait for (templated).
    :param challenge: the client challenge of the submission (templated; needed to verify the signer).
    :param from_block: block to look for the close event from (templated; default: the submission's, or 0).
    :param submit_task_id: task id of the submitting operator to pull the three values above from.
    :param ethernity_conn_id: the ``ethernity`` connection.
    :param deferrable: wait in the triggerer (default True, or ``[operators] default_deferrable``).
    :param poll_interval: seconds between chain polls (also the poke interval).

    ``timeout``, ``soft_fail``, ``mode`` ("poke"/"reschedule") and the other sensor arguments work as usual.
    A failed task code fails the sensor with the code name and the enclave's error text.
    """

    template_fields: Sequence[str] = ("order_id", "challenge", "from_block")
    ui_color = "#e8f1ff"

    def __init__(
        self,
        *,
        order_id: int | str | None = None,
        challenge: str | None = None,
        from_block: int | str | None = None,
        submit_task_id: str | None = None,
        ethernity_conn_id: str = EthernityHook.default_conn_name,
        deferrable: bool = True,
        poll_interval: float = 2.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        if order_id is None and submit_task_id is None:
            raise ValueError("order_id or submit_task_id is required")
        self.order_id = order_id
        self.challenge = challenge
        self.from_block = from_block
        self.submit_task_id = submit_task_id
        self.ethernity_conn_id = ethernity_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval

    @property
    def hook(self) -> EthernityHook:
        if not hasattr(self, "_hook"):
            self._hook = EthernityHook(self.ethernity_conn_id)
        return self._hook

    def _resolve(self, context: Context) -> tuple[int, str, int]:
        order_id, challenge, from_block = self.order_id, self.challenge, self.from_block
        if self.submit_task_id:
            ti = context["ti"]
            order_id = (
                order_id if order_id not in (None, "", "None") else ti.xcom_pull(self.submit_task_id, key="order_id")
            )
            challenge = challenge or ti.xcom_pull(self.submit_task_id, key="challenge")
            if from_block in (None, "", "None"):
                from_block = ti.xcom_pull(self.submit_task_id, key="from_block")
        try:
            order = int(order_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"order_id={order_id!r} is not an order number (a non-negative integer)") from None
        if order < 0:
            raise ValueError(f"order_id={order} is not an order number (a non-negative integer)")
        if not challenge:
            raise ValueError("challenge is missing: pass it or submit_task_id of the submitting operator")
        return order, str(challenge), int(from_block or 0)

    def execute(self, context: Context) -> Any:
        order_id, challenge, from_block = self._resolve(context)
        if not self.deferrable:
            return super().execute(context)
        if self.hook.client.is_order_closed(order_id, from_block):
            return self._result(order_id, challenge)
        from airflow_provider_ethernity.triggers.ethernity import EthernityTaskCompletedTrigger

        self.defer(
            trigger=EthernityTaskCompletedTrigger(
                ethernity_conn_id=self.ethernity_conn_id,
                order_id=order_id,
                from_block=from_block,
                poll_interval=self.poll_interval,
                deadline=time.time() + float(self.timeout) if self.timeout else None,
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> PokeReturnValue | bool:
        order_id, challenge, from_block = self._resolve(context)
        if not self.hook.client.is_order_closed(order_id, from_block):
            self.log.info("Order %s: not completed yet", order_id)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._result(order_id, challenge))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resumed from :class:`EthernityTaskCompletedTrigger`."""
        order_id, challenge, _ = self._resolve(context)
        if event.get("status") != "completed":
            order = self.hook.get_order(order_id)
            message = f"order {order_id} did not complete before the sensor's timeout (status {order.status_name})"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        return self._result(order_id, challenge)

    def _result(self, order_id: int, challenge: str) -> Any:
        result = self.hook.get_result(order_id, challenge)
        if not result.success:
            raise TaskFailedError(order_id, result.task_code, result.task_code_name, result.text)
        self.log.info("Result of order %s verified and decrypted: %s", order_id, result.task_code_name)
        return result.value
