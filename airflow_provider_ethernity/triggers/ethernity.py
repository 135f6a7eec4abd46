"""Triggers that wait on the Ethernity protocol without holding a worker slot.

Both wait through the shared :class:`~airflow_provider_ethernity.protocol.watcher.OrderEventWatcher` of
their chain, so a thousand deferred tasks cost the RPC about as much as one. Their serialized kwargs hold
only the connection id, ids, block numbers, intervals and a deadline: never a key or token (they are
stored in the metadata database in clear).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.triggers.ending import brief as _brief
from airflow_provider_ethernity.triggers.ending import push_xcoms, result_for_xcom
from airflow_provider_ethernity.triggers.events import TaskEvent, TaskEventStatus, validate_event
from airflow_provider_ethernity.wallets import FIRST

if TYPE_CHECKING:
    from airflow_provider_ethernity.protocol.results import TaskResult

__all__ = [
    "EthernityOrderPlacedTrigger",
    "EthernityTaskCompletedTrigger",
    "EthernityTaskResultTrigger",
    "EthernityTaskTrigger",
    "TaskEvent",
    "TaskEventStatus",
    "validate_event",
]


class _EthernityWaitTrigger(BaseTrigger):
    """Common part: connection -> shared watcher, deadline, and cancelling on a user's kill."""

    #: Whether the trigger may end the task itself (see :mod:`.ending`); set by the triggers that can.
    end_from_trigger = False

    def __init__(
        self,
        *,
        ethernity_conn_id: str,
        from_block: int,
        poll_interval: float = 1.0,
        deadline: float | None = None,
        do_request_id: int | None = None,
        cancel_on_kill: bool = True,
    ) -> None:
        super().__init__()
        self.ethernity_conn_id = ethernity_conn_id
        self.from_block = int(from_block)
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else None
        self.do_request_id = int(do_request_id) if do_request_id is not None else None
        self.cancel_on_kill = cancel_on_kill

    def _base_kwargs(self) -> dict[str, Any]:
        return {
            "ethernity_conn_id": self.ethernity_conn_id,
            "from_block": self.from_block,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "do_request_id": self.do_request_id,
            "cancel_on_kill": self.cancel_on_kill,
        }

    async def _watcher(self) -> Any:
        return await EthernityHook.aget_watcher(self.ethernity_conn_id, self.poll_interval)

    def _wallet(self) -> str | None:
        """The wallet slot of the deferred task instance (a wallet pool signs with the task's own wallet)."""
        from airflow_provider_ethernity.wallets import slot_of

        return slot_of(self.task_instance) if self.task_instance is not None else None

    async def _spending_hook(self) -> EthernityHook:
        """The hook that signs for the deferred task: with a wallet pool, the task instance's own wallet."""
        wallet = self._wallet()
        if wallet is None:
            return await EthernityHook.afor_connection(self.ethernity_conn_id)
        return await EthernityHook.afor_connection(self.ethernity_conn_id, wallet)

    def _ends_here(self) -> bool:
        """``end_from_trigger``, in a triggerer that runs the trigger for a task instance (``airflow dags test``
        runs it inline, with none: the task resumes in the worker there)."""
        return self.end_from_trigger and self.task_instance is not None

    def _seconds_left(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.time())

    async def _wait(self, awaitable: Any) -> tuple[bool, Any]:
        """(True, value) when the watcher answered, (False, None) at the deadline."""
        try:
            return True, await asyncio.wait_for(awaitable, timeout=self._seconds_left())
        except asyncio.TimeoutError:
            return False, None

    async def on_kill(self) -> None:
        """A user killed the deferred task: cancel its DO request if no node booked it (escrow back)."""
        if not (self.cancel_on_kill and self.do_request_id is not None):
            return
        from asgiref.sync import sync_to_async

        hook = await self._spending_hook()
        tx = await sync_to_async(hook.cancel_task, thread_sensitive=False)(self.do_request_id)
        if tx:
            self.log.info("Cancelled DO request %s on kill (tx %s)", self.do_request_id, tx)


class EthernityOrderPlacedTrigger(_EthernityWaitTrigger):
    """Fires when a node places an order for ``do_request_id`` (``_orderPlacedEV``), or at ``deadline``.

    Events: ``{"status": "placed", "order_id", "do_request_id"}`` or ``{"status": "timeout", ...}``.
    """

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", self._base_kwargs()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watcher = await self._watcher()
        self.log.info("Waiting for a node to place an order for DO request %s", self.do_request_id)
        found, order_id = await self._wait(watcher.wait_order_placed(self.do_request_id, self.from_block))
        if found:
            yield TriggerEvent({"status": "placed", "order_id": order_id, "do_request_id": self.do_request_id})
        else:
            yield TriggerEvent({"status": "timeout", "do_request_id": self.do_request_id})


class EthernityTaskCompletedTrigger(_EthernityWaitTrigger):
    """Fires at TASK_COMPLETED: ``_orderClosedEV`` of ``order_id`` (the order closed on chain), or at ``deadline``.

    Events: ``{"status": "completed", "order_id", "block"}`` or ``{"status": "timeout", "order_id"}``.
    """

    def __init__(self, *, order_id: int, **kwargs: Any) -> None:
        kwargs.setdefault("cancel_on_kill", False)  # a booked order cannot be cancelled
        super().__init__(**kwargs)
        self.order_id = int(order_id)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **self._base_kwargs(),
            "order_id": self.order_id,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watcher = await self._watcher()
        self.log.info("Waiting for TASK_COMPLETED of order %s", self.order_id)
        found, block = await self._wait(watcher.wait_order_closed(self.order_id, self.from_block))
        if found:
            yield TriggerEvent({"status": "completed", "order_id": self.order_id, "block": block})
        else:
            yield TriggerEvent({"status": "timeout", "order_id": self.order_id})


#: Threads for the triggerer's spending calls (approvals, cancellations): each waits for its receipt, so
#: many tasks approving at once must not queue behind one thread.
_SPEND_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ethernity-spend")


class EthernityTaskTrigger(_EthernityWaitTrigger):
    """The whole wait of one submitted task, in the triggerer: order placed -> approval -> TASK_COMPLETED.

    It approves the order itself (through the hook, with the connection's wallet, under the wallet lock and
    the idempotent transaction layer) as soon as the order is seen, so the approval lands within the node's
    window whatever Airflow's resume latency. At ``order_deadline`` it cancels the request (escrow back) or,
    when a node booked it at the edge, carries on with that order. A restarted triggerer re-runs it from its
    serialized kwargs: finding the order again, approving is idempotent.

    Events (see :class:`TaskEventStatus`): completed, approved (``wait_for_completion=False``), cancelled,
    timeout, error. With ``end_from_trigger`` a completed task whose result verifies (see :mod:`.ending`), or an
    approved one, ends here instead: the trigger pushes the XComs the operator would have pushed
    (``return_value``, ``order_id``, ``result_cid``, ``task_code_name`` and the order's link), then yields
    ``TaskSuccessEvent()``.
    """

    def __init__(
        self,
        *,
        do_request_id: int,
        order_deadline: float,
        completion_timeout: float,
        approve: bool = True,
        wait_for_completion: bool = True,
        order_id: int | None = None,
        order_count_anchor: int | None = None,
        end_from_trigger: bool = False,
        challenge_salt: str | None = None,
        request_tx: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("cancel_on_kill", order_id is None)
        super().__init__(do_request_id=do_request_id, **kwargs)
        self.order_deadline = float(order_deadline)
        self.completion_timeout = float(completion_timeout)
        self.approve = bool(approve)
        self.wait_for_completion = bool(wait_for_completion)
        self.order_id = None if order_id is None else int(order_id)
        self.order_count_anchor = None if order_count_anchor is None else int(order_count_anchor)
        self.end_from_trigger = bool(end_from_trigger)
        self.challenge_salt = challenge_salt  # public: the challenge is derived from it with the wallet key
        self.request_tx = request_tx  # the order's link of a pinned order (no approval transaction)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **self._base_kwargs(),
            "order_deadline": self.order_deadline,
            "completion_timeout": self.completion_timeout,
            "approve": self.approve,
            "wait_for_completion": self.wait_for_completion,
            "order_id": self.order_id,
            "order_count_anchor": self.order_count_anchor,
            "end_from_trigger": self.end_from_trigger,
            "challenge_salt": self.challenge_salt,
            "request_tx": self.request_tx,
        }

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(_SPEND_THREADS, fn, *args)

    def _event(self, status: TaskEventStatus, **values: Any) -> TriggerEvent:
        assert self.do_request_id is not None
        return TriggerEvent(TaskEvent(status, self.do_request_id, **values).to_payload())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        assert self.do_request_id is not None
        watcher = await self._watcher()
        hook = await self._spending_hook()
        order_id = self.order_id
        if order_id is None:
            self.log.info("Waiting for a node to place an order for DO request %s", self.do_request_id)
            timeout = max(0.0, self.order_deadline - time.time())
            try:
                order_id = await asyncio.wait_for(
                    watcher.wait_order_placed(self.do_request_id, self.from_block), timeout=timeout
                )
            except asyncio.TimeoutError:
                try:
                    order_id = await self._in_thread(
                        hook.settle_unplaced_request, self.do_request_id, self.from_block, self.order_count_anchor
                    )
                except Exception as exc:
                    yield self._event(TaskEventStatus.ERROR, message=_brief(exc))
                    return
                if order_id is None:
                    yield self._event(TaskEventStatus.CANCELLED)
                    return
        assert order_id is not None
        approval_tx = None
        if self.approve:
            try:
                approval_tx = await self._in_thread(hook.approve_order, order_id)
            except Exception as exc:
                yield self._event(TaskEventStatus.ERROR, order_id=order_id, message=f"approval failed: {_brief(exc)}")
                return
        approved = {"order_id": order_id, "approval_tx": approval_tx, "approved_at": time.time()}
        if not self.wait_for_completion:
            value = {"order_id": order_id, "do_request_id": self.do_request_id}
            if self._ends_here() and await self._ended(hook, order_id, approval_tx, value):
                yield TaskSuccessEvent()
            else:
                yield self._event(TaskEventStatus.APPROVED, **approved)
            return
        self.log.info("Waiting for TASK_COMPLETED of order %s", order_id)
        try:
            await asyncio.wait_for(watcher.wait_order_closed(order_id, self.from_block), self.completion_timeout)
        except asyncio.TimeoutError:
            yield self._event(TaskEventStatus.TIMEOUT, **approved)
            return
        if self._ends_here():
            result = await result_for_xcom(hook, order_id, self.challenge_salt, self.log)
            if result is not None:
                # logged before the end: the triggerer may close the task's trigger log as the task ends
                self.log.info("Result of order %s verified and decrypted in the triggerer: the task ends", order_id)
                ids = {"result_cid": result.result_cid, "task_code_name": result.task_code_name}
                if await self._ended(hook, order_id, approval_tx, result.value, **ids):
                    yield TaskSuccessEvent()
                    return
        yield self._event(TaskEventStatus.COMPLETED, **approved)

    async def _ended(
        self, hook: EthernityHook, order_id: int, approval_tx: str | None, value: Any, **xcoms: Any
    ) -> bool:
        """Push ``value`` and the operator's other XComs for the task to end here; False: it resumes in a worker."""
        from airflow_provider_ethernity.links.ethernity import EthernityOrderLink

        tx = approval_tx or self.request_tx
        link = EthernityOrderLink.url(hook.settings.network.explorer_url, f"tx/{tx}") if tx else ""
        xcoms = {"return_value": value, "order_id": order_id, EthernityOrderLink().xcom_key: link, **xcoms}
        return await push_xcoms(self.task_instance, xcoms, self.log)


class EthernityTaskResultTrigger(EthernityTaskCompletedTrigger):
    """:class:`EthernityTaskCompletedTrigger` for a sensor that starts in the triggerer (``start_from_trigger``),
    and with ``end_from_trigger`` ends there too: at TASK_COMPLETED it fetches, verifies and decrypts the result
    (in a worker thread of the triggerer, with the connection's key) and ends the task with the value as its
    ``return_value`` XCom, so the task instance never gets a worker process.

    ``order_id``, ``from_block`` and ``challenge_salt`` may arrive as Jinja templates (the triggerer renders
    them before :meth:`run`), so they are parsed there, not here. A task that failed in the enclave, a result
    that fails a check, or the deadline resume the task in a worker (``{"status": "completed"|"timeout"}``),
    where the sensor raises its usual errors.
    """

    def __init__(
        self,
        *,
        order_id: int | str,
        from_block: int | str = 0,
        challenge_salt: str | None = None,
        end_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(order_id=0, from_block=0, **kwargs)
        self.order_id = order_id  # type: ignore[assignment]  # rendered in the triggerer, parsed in run()
        self.from_block = from_block  # type: ignore[assignment]
        self.challenge_salt = challenge_salt
        self.end_from_trigger = bool(end_from_trigger)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **self._base_kwargs(),
            "order_id": self.order_id,
            "challenge_salt": self.challenge_salt,
            "end_from_trigger": self.end_from_trigger,
        }

    def _parse(self) -> None:
        def number(name: str, value: Any) -> int:
            try:
                parsed = int(str(value).strip())
            except (TypeError, ValueError):
                raise ValueError(f"{name}={value!r} is not a non-negative integer (a missing XCom?)") from None
            if parsed < 0:
                raise ValueError(f"{name}={parsed} is not a non-negative integer")
            return parsed

        self.order_id = number("order_id", self.order_id)
        self.from_block = number("from_block", self.from_block if self.from_block not in (None, "", "None") else 0)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self._parse()
        async for event in super().run():
            if not self._ends_here() or event.payload.get("status") != "completed":
                yield event
                return
            result = await self._result()
            if result is not None:  # logged before the end: the triggerer may close the task's log as it ends
                self.log.info("Result of order %s verified and decrypted in the triggerer", self.order_id)
            if result is not None and await push_xcoms(self.task_instance, {"return_value": result.value}, self.log):
                yield TaskSuccessEvent()
            else:
                yield event  # the worker raises the sensor's error with the task code and text
            return

    async def _result(self) -> TaskResult | None:
        from asgiref.sync import sync_to_async

        salt = self.challenge_salt if self.challenge_salt not in (None, "", "None") else None
        if salt is None:
            return None
        try:
            # the order's requester holds the key that decrypts it (with a wallet pool: not this task's wallet)
            reader = await EthernityHook.afor_connection(self.ethernity_conn_id, FIRST)
            order = await sync_to_async(reader.get_order, thread_sensitive=False)(self.order_id)
            hook = await EthernityHook.afor_connection(self.ethernity_conn_id, order.downer)
        except Exception as exc:
            self.log.warning("Order %s: the result is fetched in a worker instead (%s)", self.order_id, _brief(exc))
            return None
        return await result_for_xcom(hook, self.order_id, salt, self.log)
