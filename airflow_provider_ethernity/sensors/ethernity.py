"""EthernityTaskSensor: wait for TASK_COMPLETED of an order and return its verified, decrypted result."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException
from airflow.triggers.base import StartTriggerArgs

from airflow_provider_ethernity.hooks.ethernity import EthernityHook

if TYPE_CHECKING:
    from airflow.sdk import Context


class _Challenge(NamedTuple):
    salt: str | None
    challenge: str | None


class EthernityTaskSensor(BaseSensorOperator):
    """Wait until an order's task completed (the order closed on chain), then return its result value.

    Typically downstream of ``EthernityRunTaskOperator(wait_for_completion=False)``: pass
    ``submit_task_id`` and the sensor pulls ``order_id``, ``challenge_salt`` and ``from_block`` from that
    task's XCom, or pass them (templated) yourself. The result is fetched, verified (order, contract, chain,
    enclave signer, checksum) and decrypted with the connection's key; only the value reaches XCom. The
    challenge the signer check needs is re-derived from the wallet key and the public salt: it is in no XCom.

    :param order_id: the order to wait for (templated).
    :param challenge_salt: the submission's public challenge salt (templated).
    :param challenge: the client challenge itself, for a submission made outside this provider (templated).
    :param from_block: block to look for the close event from (templated; default: the submission's, or 0).
    :param submit_task_id: task id of the submitting operator to pull the three values above from.
    :param ethernity_conn_id: the ``ethernity`` connection.
    :param deferrable: wait in the triggerer (default True, or ``[operators] default_deferrable``).
    :param poll_interval: seconds between chain polls (also the poke interval).
    :param start_from_trigger: start in the triggerer: the scheduler defers the task straight to
        :class:`EthernityTaskResultTrigger` (no worker process to start it; ``order_id``, ``from_block`` and
        ``challenge_salt``, or the XComs of ``submit_task_id`` at the sensor's own map index, are rendered in the
        triggerer). Needs
        ``deferrable`` and a ``challenge_salt`` (or ``submit_task_id``), not a raw ``challenge``.
    :param end_from_trigger: with ``start_from_trigger``: the triggerer also fetches, verifies and decrypts the
        result and ends the task with it, so a successful wait never occupies a worker. ``None`` (default): yes,
        unless Airflow listeners are registered or a custom XCom backend is set. A failed task code, a result
        that fails a check, or a value that is not JSON resume in a worker as usual. The sensor's ``timeout`` is
        then Airflow's trigger timeout (the task fails, even with ``soft_fail``).

    ``timeout``, ``soft_fail``, ``mode`` ("poke"/"reschedule") and the other sensor arguments work as usual.
    A failed task code fails the sensor with the code name and the enclave's error text.
    """

    template_fields: Sequence[str] = ("order_id", "challenge_salt", "challenge", "from_block")
    ui_color = "#e8f1ff"
    start_trigger_args = StartTriggerArgs(
        trigger_cls="airflow_provider_ethernity.triggers.ethernity.EthernityTaskResultTrigger",
        next_method="execute_complete",
        trigger_kwargs=None,
        next_kwargs=None,
        timeout=None,
    )
    start_from_trigger = False

    def __init__(
        self,
        *,
        order_id: int | str | None = None,
        challenge_salt: str | None = None,
        challenge: str | None = None,
        from_block: int | str | None = None,
        submit_task_id: str | None = None,
        ethernity_conn_id: str = EthernityHook.default_conn_name,
        deferrable: bool = True,
        poll_interval: float = 2.0,
        start_from_trigger: bool = False,
        end_from_trigger: bool | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        if order_id is None and submit_task_id is None:
            raise ValueError("order_id or submit_task_id is required")
        self.order_id = order_id
        self.challenge_salt = challenge_salt
        self.challenge = challenge
        self.from_block = from_block
        self.submit_task_id = submit_task_id
        self.ethernity_conn_id = ethernity_conn_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        # Airflow reads this attribute (a DAG whose task has it True fails to load while listeners are registered):
        # True only where the task really may end in the triggerer
        self.end_from_trigger = False
        self.start_from_trigger = start_from_trigger
        if start_from_trigger:
            from airflow_provider_ethernity.triggers.ending import resolve_end_from_trigger

            self.end_from_trigger = resolve_end_from_trigger(end_from_trigger)
            self._start_in_triggerer()

    def _start_in_triggerer(self) -> None:
        """The trigger's kwargs, templates included (the triggerer renders the sensor's template fields that
        are among them): XCom pulls of ``submit_task_id`` where a value was not given."""
        if not self.deferrable:
            raise ValueError("start_from_trigger=True needs deferrable=True")
        if self.challenge and not self.challenge_salt:
            raise ValueError("start_from_trigger=True needs challenge_salt (or submit_task_id), not a raw challenge")

        def pulled(value: Any, key: str) -> Any:
            if value not in (None, "") or not self.submit_task_id:
                return value
            # an explicit map index: the triggerer answers single XCom reads only (GetXCom), not the slice reads a
            # pull without map_indexes makes (Airflow 3.3.2: that request is never answered and the trigger hangs)
            task = self.submit_task_id
            return f"{{{{ ti.xcom_pull(task_ids={task!r}, key={key!r}, map_indexes=ti.map_index) }}}}"

        self.order_id = pulled(self.order_id, "order_id")
        self.challenge_salt = pulled(self.challenge_salt, "challenge_salt")
        self.from_block = pulled(self.from_block, "from_block")
        if not self.challenge_salt:
            raise ValueError("start_from_trigger=True needs challenge_salt or submit_task_id")
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=self.start_trigger_args.trigger_cls,
            next_method="execute_complete",
            trigger_kwargs={
                "ethernity_conn_id": self.ethernity_conn_id,
                "order_id": self.order_id,
                "from_block": self.from_block if self.from_block is not None else 0,
                "challenge_salt": self.challenge_salt,
                "poll_interval": self.poll_interval,
                "end_from_trigger": self.end_from_trigger,
            },
            next_kwargs=None,
            timeout=dt.timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    @cached_property
    def hook(self) -> EthernityHook:
        return EthernityHook(self.ethernity_conn_id)

    def _resolve(self, context: Context) -> tuple[int, _Challenge, int]:
        order_id, salt, challenge, from_block = self.order_id, self.challenge_salt, self.challenge, self.from_block
        if self.submit_task_id:
            ti = context["ti"]
            if order_id in (None, "", "None"):
                order_id = ti.xcom_pull(self.submit_task_id, key="order_id")
            if not salt and not challenge:
                salt = ti.xcom_pull(self.submit_task_id, key="challenge_salt")
            if from_block in (None, "", "None"):
                from_block = ti.xcom_pull(self.submit_task_id, key="from_block")
        try:
            order = int(order_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(f"order_id={order_id!r} is not an order number (a non-negative integer)") from None
        if order < 0:
            raise ValueError(f"order_id={order} is not an order number (a non-negative integer)")
        if not salt and not challenge:
            raise ValueError("challenge_salt is missing: pass it, or submit_task_id of the submitting operator")
        return (
            order,
            _Challenge(str(salt) if salt else None, str(challenge) if challenge else None),
            int(from_block or 0),
        )

    def execute(self, context: Context) -> Any:
        order_id, challenge, from_block = self._resolve(context)
        if not self.deferrable:
            return super().execute(context)
        if self.hook.is_order_closed(order_id, from_block):
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
        if not self.hook.is_order_closed(order_id, from_block):
            self.log.info("Order %s: not completed yet", order_id)
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._result(order_id, challenge))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **_: Any) -> Any:
        """Resumed from :class:`EthernityTaskCompletedTrigger` (the event is all it needs besides XCom)."""
        order_id, challenge, _from_block = self._resolve(context)
        if not isinstance(event, dict) or event.get("status") not in ("completed", "timeout"):
            raise ValueError(f"the Ethernity trigger event is missing or malformed: {event!r}")
        if event.get("status") != "completed":
            order = self.hook.get_order(order_id)
            message = f"order {order_id} did not complete before the sensor's timeout (status {order.status_name})"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        return self._result(order_id, challenge)

    def _result(self, order_id: int, challenge: _Challenge) -> Any:
        from airflow_provider_ethernity.operators.ethernity import EthernityTaskFailed

        # the order's requester holds the key that decrypts it: with a wallet pool, the submitting task's wallet
        hook = self.hook
        owner = hook.get_order(order_id).downer
        if str(owner).lower() != hook.wallet_address.lower():
            hook = EthernityHook(self.ethernity_conn_id, wallet=owner)
        result = hook.get_result(order_id, challenge.challenge, challenge_salt=challenge.salt)
        if not result.success:
            raise EthernityTaskFailed(order_id, result.task_code, result.task_code_name, result.text)
        self.log.info("Result of order %s verified and decrypted: %s", order_id, result.task_code_name)
        return result.value
