"""The operator's deferral: handing its waits to the triggerer, and where the task ends.

Deferred once, :class:`~airflow_provider_ethernity.triggers.ethernity.EthernityTaskTrigger` waits for the order,
approves it and waits for TASK_COMPLETED. Then either the trigger ends the task itself with the verified result
(``end_from_trigger``: one worker process per task instead of two) or the task resumes in a worker
(:meth:`DeferralMixin.execute_complete`), which continues from the task state whatever the event says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow.sdk.exceptions import AirflowException

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ethernity.protocol.lifecycle import TaskLifecycle
    from airflow_provider_ethernity.protocol.submission import Submission


class DeferralMixin:
    """``_defer`` and ``execute_complete`` of :class:`EthernityRunTaskOperator` (see the module docstring)."""

    if TYPE_CHECKING:  # provided by the operator
        ethernity_conn_id: str
        poll_interval: float
        wait_for_completion: bool
        result_path: Any
        result_mode: str
        do_xcom_push: bool
        outlets: Any
        log: Any
        _end_from_trigger: bool | None

        def defer(self, **kwargs: Any) -> NoReturn: ...
        def iter_mapped_dependants(self) -> Any: ...
        def _lifecycle(self, context: Context) -> TaskLifecycle: ...
        def _publish(self, context: Context, sub: Submission) -> None: ...
        def _order_known(self, context: Context, sub: Submission) -> None: ...
        def _finish(self, context: Context, lifecycle: TaskLifecycle, sub: Submission) -> Any: ...
        def _discard_staged_input(self) -> None: ...

    @property
    def end_from_trigger(self) -> bool:
        """Whether the trigger may end the task (Airflow reads this attribute: with listeners registered it refuses
        a DAG whose task has it True). ``None`` (the default) resolves to True where nothing is lost."""
        from airflow_provider_ethernity.triggers.ending import resolve_end_from_trigger

        return resolve_end_from_trigger(self._end_from_trigger)

    def _ends_in_triggerer(self) -> bool:
        """The trigger ends the task only where a worker would add nothing but the XComs the trigger pushes too:
        a value result (no ``result_path``, no reference), no outlets (their asset events are a worker's), plain
        ``return_value`` XCom, no task mapping over it."""
        return (
            self.end_from_trigger
            and self.do_xcom_push
            and not getattr(self, "multiple_outputs", False)
            and not self.outlets
            and (not self.wait_for_completion or (self.result_path is None and self.result_mode == "value"))
            and not self._feeds_a_mapping()
        )

    def _feeds_a_mapping(self) -> bool:
        """A downstream task maps over this task's value: Airflow records its length with the worker's push."""
        try:
            return next(self.iter_mapped_dependants(), None) is not None
        except Exception:  # no DAG to walk: let a worker push it
            return True

    def _defer(self, lifecycle: TaskLifecycle, sub: Submission) -> NoReturn:
        from airflow_provider_ethernity.protocol.submission import Phase
        from airflow_provider_ethernity.triggers.ethernity import EthernityTaskTrigger

        assert sub.do_request_id is not None, "a submission is deferred only once its DO request is placed"
        ends_there = self._ends_in_triggerer()
        self.log.info(
            "Deferring: the triggerer waits for the order of DO request %s, approves it and waits for TASK_COMPLETED%s",
            sub.do_request_id,
            "; it ends the task with the verified result" if ends_there else "",
        )
        self.defer(
            trigger=EthernityTaskTrigger(
                ethernity_conn_id=self.ethernity_conn_id,
                do_request_id=sub.do_request_id,
                from_block=sub.from_block,
                poll_interval=self.poll_interval,
                order_deadline=sub.order_deadline,
                completion_timeout=lifecycle.completion_timeout_seconds(sub),
                approve=not sub.pinned and sub.phase is not Phase.APPROVED,
                wait_for_completion=self.wait_for_completion,
                order_id=sub.order_id,
                order_count_anchor=sub.order_count_anchor,
                end_from_trigger=ends_there,
                challenge_salt=sub.challenge_salt if ends_there else None,
                request_tx=sub.request_tx if ends_there else None,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None, **_: Any) -> Any:
        """Resumed from :class:`EthernityTaskTrigger`. Works when Airflow drops the resume kwargs: everything
        comes from the task state; a try with no submission record was superseded and stops."""
        try:
            return self._resume(context, event)
        finally:
            self._discard_staged_input()

    def _resume(self, context: Context, event: dict[str, Any] | None) -> Any:
        from airflow_provider_ethernity.protocol.submission import FencedError
        from airflow_provider_ethernity.triggers.events import TaskEventStatus, validate_event

        lifecycle = self._lifecycle(context)  # the task is staged only if it is resubmitted (_task_spec)
        sub = lifecycle.store.load()
        if sub is None:
            raise FencedError(
                "resumed without a submission record in the task state: this try was superseded (Airflow moved "
                "the task instance on) or its state was lost; it stops here and sends nothing"
            )
        ev = validate_event(event)
        if ev.do_request_id != sub.do_request_id:
            raise FencedError(
                f"the trigger event is for DO request {ev.do_request_id}, but this task's submission is DO request "
                f"{sub.do_request_id}: a stale event; nothing is sent"
            )
        self.log.info("Resumed in a worker: DO request %s, event %s", sub.do_request_id, ev.status.value)
        self._publish(context, sub)
        if ev.status is TaskEventStatus.CANCELLED:
            raise lifecycle.cancelled(sub)
        if ev.status is TaskEventStatus.ERROR:
            raise AirflowException(f"DO request {sub.do_request_id}: {ev.message}")
        assert ev.order_id is not None
        sub = lifecycle.order_placed(sub, ev.order_id, approved=True, approval_tx=ev.approval_tx,
                                     approved_at=ev.approved_at)  # fmt: skip
        self._order_known(context, sub)
        if ev.status is TaskEventStatus.TIMEOUT:
            raise lifecycle.completion_timeout_error(sub)
        return self._finish(context, lifecycle, sub)
