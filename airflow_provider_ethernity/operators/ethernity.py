"""EthernityRunTaskOperator: one confidential task on Ethernity Cloud as an Airflow task.

Importing this module must stay cheap (DAG files import it): web3 and the crypto libraries load only when
a task runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.links.ethernity import EthernityOrderLink, EthernityRequestLink
from airflow_provider_ethernity.protocol.errors import (
    OperatorFaultError,
    OrderTimeoutError,
    ResultVerificationError,
    TaskFailedError,
)
from airflow_provider_ethernity.protocol.metadata import normalize_node_address
from airflow_provider_ethernity.protocol.resources import Resources

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ethernity.protocol.results import TaskResult

#: Key of the submission record in ``task_state_store`` (renaming it breaks in-flight retries).
STATE_KEY = "ethernity_submission"
#: Extra time the node gets beyond the task's duration before the wait fails (the runner's margin).
COMPLETION_MARGIN_SECONDS = 900


def _is_template(value: Any) -> bool:
    """Whether a string is only known after rendering (a Jinja expression)."""
    return isinstance(value, str) and "{{" in value


class EthernityRunTaskOperator(BaseOperator):
    """Run Python code confidentially on an Ethernity Cloud node and return its verified, decrypted result.

    Flow: submit (seal code and input for the enclave, upload to IPFS, ``_addDORequest``) -> wait for a node
    to place an order -> approve it (unless pinned to a node) -> wait for TASK_COMPLETED -> fetch, verify and
    decrypt the result -> return its value (XCom ``return_value``). In deferrable mode both waits run in the
    triggerer. A retried task re-attaches to the request it already paid for.

    :param code: Python source run in the enclave (templated; a path ending in ``.py`` is read and rendered).
        It reads its input as ``___etny_data_set___`` and returns with ``___etny_result___(value)``.
    :param input_data: input dataset, a string (templated; often an upstream XCom). Non-strings are JSON-encoded.
    :param resources: dict of ``taskPrice``, ``cpu``, ``memory``, ``storage``, ``bandwidth``, ``duration``,
        ``validators`` (templated, as the attribute ``task_resources``). Missing keys take the runner's defaults;
        validated before any transaction.
    :param trustedzone: trustedzone image name (default: the connection's, then the network's).
    :param node_address: pin the task to this node (``0x…``); the order then needs no approval.
    :param ethernity_conn_id: the ``ethernity`` connection.
    :param wait_for_completion: wait for the result (default). If False, return after the order is approved
        with ``order_id`` and ``challenge`` in XCom, for an :class:`EthernityTaskSensor` downstream.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between chain polls while waiting.
    :param order_wait_timeout: seconds to wait for a node to take the request; then it is cancelled and its
        escrow returned, and the task fails.
    :param completion_timeout: seconds to wait for TASK_COMPLETED after approval (default: the task's
        duration plus 15 minutes).
    :param max_resubmits: how many times an operator fault (task codes 37/39/40, an unverifiable result) is
        resubmitted as a new request.
    """

    template_fields: Sequence[str] = ("code", "input_data", "task_resources", "trustedzone", "node_address")
    template_ext: Sequence[str] = (".py",)
    template_fields_renderers = {"code": "py", "task_resources": "json", "input_data": "json"}
    ui_color = "#e8f1ff"
    operator_extra_links = (EthernityRequestLink(), EthernityOrderLink())

    def __init__(
        self,
        *,
        code: str,
        input_data: Any = None,
        resources: dict[str, Any] | str | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        ethernity_conn_id: str = EthernityHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        order_wait_timeout: float = 1800.0,
        completion_timeout: float | None = None,
        max_resubmits: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.code = code
        self.input_data = input_data
        # ``BaseOperator.resources`` is Airflow's own (executor resources): ours live under another name.
        self.task_resources = resources
        self.trustedzone = trustedzone
        self.node_address = node_address
        self.ethernity_conn_id = ethernity_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.order_wait_timeout = order_wait_timeout
        self.completion_timeout = completion_timeout
        self.max_resubmits = max_resubmits
        _check_positive("poll_interval", poll_interval)
        _check_positive("order_wait_timeout", order_wait_timeout)
        if completion_timeout is not None:
            _check_positive("completion_timeout", completion_timeout)
        if not isinstance(max_resubmits, int) or isinstance(max_resubmits, bool) or not 0 <= max_resubmits <= 10:
            raise ValueError(f"max_resubmits={max_resubmits!r} is invalid: allowed an integer from 0 to 10")
        if resources is not None and not isinstance(resources, str):
            Resources.from_value(resources)  # fail at DAG parse time; templated strings are checked in execute
        if node_address and not _is_template(node_address):
            normalize_node_address(node_address)
        self._submission: dict[str, Any] | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def hook(self) -> EthernityHook:
        if not hasattr(self, "_hook"):
            self._hook = EthernityHook(self.ethernity_conn_id)
        return self._hook

    @property
    def _explorer_url(self) -> str | None:
        return self.hook.settings.network.explorer_url

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render as usual; a ``.py`` file that is not found is reported with the parameter that named it."""
        from jinja2 import TemplateNotFound

        try:
            super().render_template_fields(context, jinja_env)
        except TemplateNotFound as exc:
            fields = [f for f in self.template_fields if getattr(self, f, None) == exc.name] or ["code"]
            raise FileNotFoundError(
                f"{fields[0]}={exc.name!r}: the file was not found in the DAG's folder or template_searchpath ({exc})"
            ) from None

    def _validated(self) -> tuple[str, str | None, Resources, str | None]:
        """Everything checkable before a transaction; errors name the parameter."""
        code = self.code
        if not isinstance(code, str) or not code.strip():
            raise ValueError("code is empty: pass Python source or the path of a .py file (templated)")
        if code.strip().endswith(".py") and "\n" not in code.strip() and "(" not in code:
            raise FileNotFoundError(
                f"code={code.strip()!r} looks like the path of a .py file that was not rendered: keep the file "
                "next to the DAG file or in the DAG's template_searchpath"
            )
        resources = self.task_resources
        if isinstance(resources, str):
            import json

            try:
                resources = json.loads(resources)
            except ValueError:
                raise ValueError(f"resources={resources!r} is not a dict or JSON object") from None
        spec = Resources.from_value(resources)
        input_data = _encode_input(self.input_data)
        node = normalize_node_address(self.node_address) or None
        return code, input_data, spec, node

    def _completion_deadline(self, spec: Resources) -> float:
        seconds = self.completion_timeout or spec.duration * 3600 + COMPLETION_MARGIN_SECONDS
        return time.time() + seconds

    @staticmethod
    def _store(context: Context) -> Any:
        return context.get("task_state_store")  # type: ignore[call-overload]

    def _save(self, context: Context, submission: dict[str, Any]) -> None:
        self._submission = submission
        store = self._store(context)
        if store is not None:
            store.set(STATE_KEY, submission)

    def _load(self, context: Context) -> dict[str, Any] | None:
        store = self._store(context)
        return store.get(STATE_KEY) if store is not None else None

    def _push(self, context: Context, **values: Any) -> None:
        for key, value in values.items():
            context["ti"].xcom_push(key=key, value=value)

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        code, input_data, spec, node = self._validated()
        submission = self._reattach(context)
        if submission is None:
            submission = self._submit(context, code, input_data, spec, node, resubmits=0)
        else:
            self._publish(context, submission)
        return self._continue(context, submission)

    def _submit(
        self, context: Context, code: str, input_data: str | None, spec: Resources, node: str | None, resubmits: int
    ) -> dict[str, Any]:
        task = self.hook.submit_task(code, input_data, spec, self.trustedzone, node)
        submission = {
            "do_request_id": task.do_request_id,
            "tx_hash": task.tx_hash,
            "from_block": task.from_block,
            "order_count_anchor": task.order_count_anchor,
            "challenge": task.challenge,
            "node_address": task.node_address,
            "duration": spec.duration,
            "order_deadline": time.time() + self.order_wait_timeout,
            "order_id": None,
            "resubmits": resubmits,
        }
        self._save(context, submission)
        self.log.info(
            "Waiting up to %.0f s for a node to take DO request %s", self.order_wait_timeout, task.do_request_id
        )
        self._publish(context, submission)
        return submission

    def _publish(self, context: Context, submission: dict[str, Any]) -> None:
        """The request's ids as XCom and its link; again after a re-attaching retry (a new try starts with no
        XCom)."""
        self._push(
            context,
            do_request_id=submission["do_request_id"],
            tx_hash=submission["tx_hash"],
            challenge=submission["challenge"],
        )
        self._push(context, from_block=submission["from_block"])
        EthernityRequestLink.persist(context, self._explorer_url, f"tx/{submission['tx_hash']}")

    def _reattach(self, context: Context) -> dict[str, Any] | None:
        """A retry after a crash, timeout or kill: continue the request already paid for, if it is alive."""
        from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus

        previous = self._load(context)
        if not previous:
            return None
        do_request_id = previous["do_request_id"]
        order_id = previous.get("order_id")
        if order_id is None:
            order_id = self.hook.find_order(do_request_id, previous["from_block"], previous.get("order_count_anchor"))
        if order_id is not None:
            status = self.hook.get_order_status(order_id)
            if status in (OrderStatus.OPEN, OrderStatus.PROCESSING, OrderStatus.CLOSED):
                self.log.info(
                    "Re-attaching to DO request %s, order %s (%s): nothing is submitted again",
                    do_request_id,
                    order_id,
                    status.name,
                )
                previous["order_id"] = order_id
                previous.pop("completion_deadline", None)  # each try waits its own completion_timeout
                self._save(context, previous)
                return previous
        elif self.hook.client.get_request_status(do_request_id) == RequestStatus.AVAILABLE:
            self.log.info("Re-attaching to DO request %s, still waiting for a node", do_request_id)
            return previous
        self.log.warning("The previous DO request %s ended without a result; submitting a new one", do_request_id)
        return None

    def _continue(self, context: Context, submission: dict[str, Any]) -> Any:
        """Go on from wherever the submission is: waiting for an order, approval, completion or result."""
        self._submission = submission
        if submission.get("order_id") is None:
            if self.deferrable:
                from airflow_provider_ethernity.triggers.ethernity import EthernityOrderPlacedTrigger

                self.defer(
                    trigger=EthernityOrderPlacedTrigger(
                        ethernity_conn_id=self.ethernity_conn_id,
                        do_request_id=submission["do_request_id"],
                        from_block=submission["from_block"],
                        poll_interval=self.poll_interval,
                        deadline=submission["order_deadline"],
                    ),
                    method_name="execute_order_placed",
                    kwargs={"submission": submission},
                )
            order_id = self.hook.client.wait_for_order_id(
                submission["do_request_id"],
                submission["from_block"],
                submission.get("order_count_anchor"),
                timeout=max(0.0, submission["order_deadline"] - time.time()),
                poll_interval=self.poll_interval,
            )
            if order_id is None:
                self._no_order(submission)
            return self._order_placed(context, submission, order_id)
        return self._order_placed(context, submission, submission["order_id"])

    def execute_order_placed(self, context: Context, event: dict[str, Any], submission: dict[str, Any]) -> Any:
        """Resumed from :class:`EthernityOrderPlacedTrigger`."""
        self._submission = submission
        if event.get("status") != "placed":
            self._no_order(submission)
        return self._order_placed(context, submission, int(event["order_id"]))

    def _no_order(self, submission: dict[str, Any]) -> None:
        tx = self.hook.cancel_task(submission["do_request_id"])
        raise OrderTimeoutError(
            f"no node placed an order for DO request {submission['do_request_id']} within "
            f"order_wait_timeout={self.order_wait_timeout:g} s; "
            + ("the request was cancelled and its escrow returned" if tx else "the request is no longer available")
        )

    def _order_placed(self, context: Context, submission: dict[str, Any], order_id: int) -> Any:
        from airflow_provider_ethernity.protocol.events import OrderStatus

        first_time = submission.get("order_id") is None
        submission["order_id"] = order_id
        submission.setdefault(
            "completion_deadline", self._completion_deadline(Resources(duration=submission["duration"]))
        )
        self._save(context, submission)
        self._push(context, order_id=order_id)
        status = self.hook.get_order_status(order_id)
        approval_tx = None
        if first_time:
            self.log.info("Order placed: order %s for DO request %s", order_id, submission["do_request_id"])
        if status == OrderStatus.OPEN:
            if submission.get("node_address"):
                raise AirflowException(f"order {order_id} of a pinned request is waiting for approval; unexpected")
            approval_tx = self.hook.approve_order(order_id)
            self.log.info("Order approved: order %s (tx %s)", order_id, approval_tx)
        elif first_time and submission.get("node_address"):
            self.log.info(
                "Order %s was delegated to the pinned node %s: no approval", order_id, submission["node_address"]
            )
        # The order's own transaction is our approval; a pinned or re-attached order links to its request.
        EthernityOrderLink.persist(context, self._explorer_url, f"tx/{approval_tx or submission['tx_hash']}")
        if not self.wait_for_completion:
            return {"order_id": order_id, "do_request_id": submission["do_request_id"]}
        if status == OrderStatus.CLOSED:
            return self._finish(context, submission)
        if status == OrderStatus.CANCELED:
            raise AirflowException(f"order {order_id} was cancelled")
        return self._wait_completion(context, submission)

    def _wait_completion(self, context: Context, submission: dict[str, Any]) -> Any:
        order_id = submission["order_id"]
        if self.deferrable:
            from airflow_provider_ethernity.triggers.ethernity import EthernityTaskCompletedTrigger

            self.defer(
                trigger=EthernityTaskCompletedTrigger(
                    ethernity_conn_id=self.ethernity_conn_id,
                    order_id=order_id,
                    from_block=submission["from_block"],
                    poll_interval=self.poll_interval,
                    deadline=submission["completion_deadline"],
                ),
                method_name="execute_completed",
                kwargs={"submission": submission},
            )
        timeout = max(0.0, submission["completion_deadline"] - time.time())
        if not self.hook.client.wait_closed(order_id, submission["from_block"], timeout, self.poll_interval):
            self._completion_timeout(submission)
        return self._finish(context, submission)

    def execute_completed(self, context: Context, event: dict[str, Any], submission: dict[str, Any]) -> Any:
        """Resumed from :class:`EthernityTaskCompletedTrigger`."""
        self._submission = submission
        if event.get("status") != "completed":
            self._completion_timeout(submission)
        return self._finish(context, submission)

    def _completion_timeout(self, submission: dict[str, Any]) -> None:
        order = self.hook.get_order(submission["order_id"])
        request = self.hook.client.get_request_status(submission["do_request_id"])
        waited = (
            f"completion_timeout={self.completion_timeout:g} s"
            if self.completion_timeout
            else f"the task's duration ({submission['duration']} h) plus {COMPLETION_MARGIN_SECONDS // 60} min"
        )
        raise AirflowException(
            f"order {order.order_id} (DO request {submission['do_request_id']}) was not completed within {waited}: "
            f"order status {order.status_name}, request status {request.name}; the node may still deliver, "
            "and a retry of this task re-attaches to the order (nothing is paid again)"
        )

    def _finish(self, context: Context, submission: dict[str, Any]) -> Any:
        order_id = submission["order_id"]
        self.log.info("Task completed: order %s closed; fetching and verifying the result", order_id)
        try:
            result = self.hook.get_result(order_id, submission["challenge"])
        except (OperatorFaultError, ResultVerificationError) as exc:
            return self._resubmit(context, submission, exc)
        return self._deliver(context, result)

    def _deliver(self, context: Context, result: TaskResult) -> Any:
        self._push(context, result_cid=result.result_cid, task_code_name=result.task_code_name)
        if not result.success:
            raise TaskFailedError(result.order_id, result.task_code, result.task_code_name, result.text)
        self.log.info("Result of order %s verified and decrypted: %s", result.order_id, result.task_code_name)
        return result.value

    def _resubmit(self, context: Context, submission: dict[str, Any], fault: Exception) -> Any:
        resubmits = int(submission.get("resubmits", 0))
        if resubmits >= self.max_resubmits:
            raise OperatorFaultError(f"{fault}; gave up after {resubmits} resubmission(s) (max_resubmits)") from None
        self.log.warning("Operator fault (%s); resubmitting (%s of %s)", fault, resubmits + 1, self.max_resubmits)
        code, input_data, spec, node = self._validated()
        fresh = self._submit(context, code, input_data, spec, node, resubmits=resubmits + 1)
        return self._continue(context, fresh)

    def on_kill(self) -> None:
        """Cancel the DO request if no node has booked it yet (the escrow comes back)."""
        submission = self._submission
        if submission and submission.get("order_id") is None:
            try:
                if self.hook.cancel_task(submission["do_request_id"]):
                    self.log.info("Cancelled DO request %s on kill", submission["do_request_id"])
            except Exception as exc:  # never let cleanup hide the kill
                self.log.warning("Could not cancel DO request %s: %s", submission["do_request_id"], exc)


def _encode_input(value: Any) -> str | None:
    """The input dataset as the string the enclave reads: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    import json
    from collections.abc import Mapping, Sequence

    def plain(obj: Any) -> Any:  # lazy XCom sequences of mapped tasks become lists
        if isinstance(obj, Mapping):
            return dict(obj)
        if isinstance(obj, Sequence) and not isinstance(obj, (str, bytes)):
            return list(obj)
        raise TypeError(f"a {type(obj).__name__} is not JSON serializable")

    try:
        return json.dumps(value, default=plain)
    except TypeError as exc:
        raise ValueError(f"input_data: {exc}") from None


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name}={value!r} is invalid: allowed a positive number of seconds")
