"""EthernityRunTaskOperator: one confidential task on Ethernity Cloud as an Airflow task.

Importing this module must stay cheap (DAG files import it): web3 and the crypto libraries load only when
a task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ethernity.hooks.ethernity import EthernityHook
from airflow_provider_ethernity.links.ethernity import EthernityOrderLink, EthernityRequestLink
from airflow_provider_ethernity.operators.announce import ResultAnnouncementMixin
from airflow_provider_ethernity.operators.data_boundary import DataBoundaryMixin, check_boundary
from airflow_provider_ethernity.operators.deferral import DeferralMixin
from airflow_provider_ethernity.operators.inputs import check_static_parameters, warn_native_rendering
from airflow_provider_ethernity.operators.inputs import encode_input as _encode_input
from airflow_provider_ethernity.protocol.errors import (
    OperatorFaultError,
    ResultNotReadyError,
    TaskFailedError,
)
from airflow_provider_ethernity.protocol.metadata import normalize_node_address
from airflow_provider_ethernity.protocol.resources import Resources

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ethernity.protocol.input_file import InputFile
    from airflow_provider_ethernity.protocol.lifecycle import TaskLifecycle
    from airflow_provider_ethernity.protocol.results import StoredResult, TaskResult
    from airflow_provider_ethernity.protocol.submission import Submission, SubmissionStore, TaskSpec

#: Key of the submission record in ``task_state_store`` (renaming it breaks in-flight retries).
STATE_KEY = "ethernity_submission"


class EthernityTaskFailed(TaskFailedError, AirflowFailException):
    """The task ran and returned a task error: Airflow does not retry it (a retry would pay for the same
    failure). Fix the code or input and clear the task: a changed task submits anew."""


class EthernityRunTaskOperator(DeferralMixin, DataBoundaryMixin, ResultAnnouncementMixin, BaseOperator):
    """Run Python code confidentially on an Ethernity Cloud node and return its verified, decrypted result.

    Flow: submit (seal code and input for the enclave, upload to IPFS, ``_addDORequest``) -> wait for a node
    to place an order -> approve it (unless pinned to a node) -> wait for TASK_COMPLETED -> fetch, verify and
    decrypt the result -> return its value (XCom ``return_value``). In deferrable mode both waits run in the
    triggerer, deferred once: the trigger approves the order itself, inside the node's approval window.

    Exactly once: the submission is recorded in ``task_state_store`` before anything is spent (the signed
    transaction first, then the DO request), so a retry, a resumed deferral or a killed worker continues the
    request already paid for; a superseded try cannot write its state and stops before spending. A retry
    re-attaches only when code, input, resources, trustedzone, node and securelock are unchanged (their
    fingerprint): a fixed or changed task submits anew. A task error fails the task without Airflow retries
    (:class:`EthernityTaskFailed`).

    :param code: Python source run in the enclave (templated; a path ending in ``.py`` is read and rendered).
        It reads its input as ``___etny_data_set___`` and returns with ``___etny_result___(value)``.
    :param input_data: input dataset, a string (templated; often an upstream XCom). Non-strings are JSON-encoded.
    :param resources: dict of ``taskPrice``, ``cpu``, ``memory``, ``storage``, ``bandwidth``, ``duration``,
        ``validators`` (templated, as the attribute ``task_resources``). Missing keys take the runner's defaults;
        validated before any transaction.
    :param trustedzone: trustedzone image name (default: the connection's, then the network's). An ``-unsafe``
        trustedzone runs only on an ``-unsafe`` network, which runs no other (checked before anything is sent).
    :param securelock: image registry name of a dApp image (securelock) to run inside the trustedzone (templated;
        default: the connection's). The request names its image and compose file; the payload is sealed for the
        trustedzone. An unknown name fails before any transaction.
    :param node_address: pin the task to this node (``0x…``); the order then needs no approval.
    :param ethernity_conn_id: the ``ethernity`` connection.
    :param wait_for_completion: wait for the result (default). If False, return after the order is approved
        with ``order_id`` and ``challenge_salt`` in XCom, for an :class:`EthernityTaskSensor` downstream.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param end_from_trigger: in deferrable mode, let the triggerer end the task with the verified result, so the
        task never resumes in a worker (one worker process per task instead of two). ``None`` (default): yes,
        unless Airflow listeners are registered or a custom XCom backend is set. It applies only to a value
        result without ``result_path`` and outlets; a task error, a failed check, a late or big result resume
        in a worker as usual.
    :param poll_interval: seconds between chain polls while waiting.
    :param order_wait_timeout: seconds to wait for a node to take the request; then it is cancelled and its
        escrow returned, and the task fails.
    :param completion_timeout: seconds to wait for TASK_COMPLETED after approval (default: the task's
        duration plus 15 minutes).
    :param max_resubmits: how many times a confirmed operator fault (task codes 37/39/40, a result of this
        order failing the signer or checksum check) is resubmitted as a new request (0-10, default 1).
    :param input_path: read the input dataset at run time from this ``ObjectStoragePath`` URI (``file://``,
        ``s3://``, ...) or ``ipfs://<CID>`` instead of ``input_data`` (templated; only the path is stored).
    :param result_path: write the decrypted result to this ``ObjectStoragePath`` URI; XCom then holds the path and
        ids, not the value (templated).
    :param result_mode: ``"value"`` (the result is the XCom value) or ``"reference"`` (XCom holds the ids to fetch,
        verify and decrypt it with :meth:`EthernityHook.fetch_result`).
    :param confidential: enforce that neither the plaintext input nor the plaintext result is stored in Airflow's
        tables (needs ``input_path`` or no input, and ``result_path`` or ``result_mode="reference"``).
    """

    template_fields: Sequence[str] = (
        "code",
        "input_data",
        "input_path",
        "result_path",
        "task_resources",
        "trustedzone",
        "securelock",
        "node_address",
    )
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
        securelock: str | None = None,
        node_address: str | None = None,
        ethernity_conn_id: str = EthernityHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 2.0,
        order_wait_timeout: float = 1800.0,
        completion_timeout: float | None = None,
        max_resubmits: int = 1,
        input_path: Any = None,
        result_path: Any = None,
        result_mode: str = "value",
        confidential: bool = False,
        end_from_trigger: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.code = code
        self.input_data = input_data
        # ``BaseOperator.resources`` is Airflow's own (executor resources): ours live under another name.
        self.task_resources = resources
        self.trustedzone = trustedzone
        self.securelock = securelock
        self.node_address = node_address
        self.ethernity_conn_id = ethernity_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.order_wait_timeout = order_wait_timeout
        self.completion_timeout = completion_timeout
        self.max_resubmits = max_resubmits
        self.input_path = input_path
        self.result_path = result_path
        self.result_mode = result_mode
        self.confidential = confidential
        self._end_from_trigger = end_from_trigger  # resolved by the ``end_from_trigger`` property
        check_boundary(input_data, input_path, result_path, result_mode, confidential)
        check_static_parameters(
            poll_interval=poll_interval, order_wait_timeout=order_wait_timeout, completion_timeout=completion_timeout,
            max_resubmits=max_resubmits, resources=resources, node_address=node_address, trustedzone=trustedzone,
            securelock=securelock,
        )  # fmt: skip

    # ------------------------------------------------------------------ helpers
    @cached_property
    def hook(self) -> EthernityHook:
        return EthernityHook(self.ethernity_conn_id)

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

    def _spec(self) -> TaskSpec:
        """The rendered task, validated (errors name the parameter) before anything is sent."""
        from airflow_provider_ethernity.protocol.inputs import validate_code

        code = validate_code(self.code)
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
        node = normalize_node_address(self.node_address) or None
        self._warn_native_rendering()
        if self.input_path:  # staged in a private temporary file, never held in memory; removed by _discard
            staged = self._staged_input = self.hook.stage_input(self.input_path)
            return self.hook.task_spec(code, staged, spec, self.trustedzone, node, self.securelock)
        return self.hook.task_spec(code, _encode_input(self.input_data), spec, self.trustedzone, node, self.securelock)

    def _task_spec(self) -> TaskSpec:
        """:meth:`_spec`, built once per run, when first needed: a resumed try stages ``input_path`` only if it
        resubmits (so a result delivered after the input file was removed is still collected)."""
        spec: TaskSpec | None = getattr(self, "_built_spec", None)
        if spec is None:
            spec = self._built_spec = self._spec()
        return spec

    def _discard_staged_input(self) -> None:
        self.__dict__.pop("_built_spec", None)
        staged: InputFile | None = getattr(self, "_staged_input", None)
        if staged is not None:
            staged.discard()
            del self._staged_input

    def _warn_native_rendering(self) -> None:
        warn_native_rendering(self, self.input_data)

    def _state(self, context: Context) -> SubmissionStore:
        """This task instance's submission record: Airflow's ``task_state_store`` (shared by its tries,
        fenced against superseded ones), or memory when the context has none (a plain ``execute`` call)."""
        from airflow_provider_ethernity.protocol.submission import KeyValueSubmissionStore, MemorySubmissionStore

        store = context.get("task_state_store")
        if store is not None:
            return KeyValueSubmissionStore(store, STATE_KEY)
        if not hasattr(self, "_memory_store"):
            self._memory_store = MemorySubmissionStore()
        return self._memory_store

    def _lifecycle(self, context: Context) -> TaskLifecycle:
        return self.hook.lifecycle(
            self._state(context),
            max_resubmits=self.max_resubmits,
            order_wait_timeout=self.order_wait_timeout,
            completion_timeout=self.completion_timeout,
            poll_interval=self.poll_interval,
        )

    def _push(self, context: Context, **values: Any) -> None:
        for key, value in values.items():
            context["ti"].xcom_push(key=key, value=value)

    def _publish(self, context: Context, sub: Submission) -> None:
        """The request's public ids as XCom and its link; again after a re-attaching retry (a new try starts
        with no XCom). The challenge is not among them: only its salt (see ``derive_challenge``)."""
        self._submission = sub
        self._push(
            context,
            do_request_id=sub.do_request_id,
            tx_hash=sub.request_tx,
            challenge_salt=sub.challenge_salt,
            from_block=sub.from_block,
        )
        EthernityRequestLink.persist(context, self._explorer_url, f"tx/{sub.request_tx}")
        if sub.order_id is not None:
            self._order_known(context, sub)
        else:  # the UI asks for both links while the task waits: an empty one, not a missing XCom error
            EthernityOrderLink.persist(context, None, "")

    def _order_known(self, context: Context, sub: Submission) -> None:
        self._push(context, order_id=sub.order_id)
        # the approval transaction; a pinned or re-attached order links to its request
        EthernityOrderLink.persist(context, self._explorer_url, f"tx/{sub.approval_tx or sub.request_tx}")

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> Any:
        try:
            spec = self._task_spec()
            lifecycle = self._lifecycle(context)
            sub = lifecycle.attach_or_submit(spec)
            self._publish(context, sub)
            return self._go_on(context, lifecycle, sub)
        finally:  # also when deferring: the input was uploaded; a resumed try stages it again if it resubmits
            self._discard_staged_input()

    def _go_on(self, context: Context, lifecycle: TaskLifecycle, sub: Submission) -> Any:
        """From wherever the submission is to the result: waiting here, or deferred once to the triggerer."""
        from airflow_provider_ethernity.protocol.submission import Phase

        while True:
            if (
                sub.phase is Phase.COMPLETED
                or (sub.phase is Phase.APPROVED and not self.wait_for_completion)
                or (sub.phase is Phase.APPROVED and lifecycle.is_closed(sub))
            ):
                return self._finish(context, lifecycle, sub)
            if self.deferrable:
                self._defer(lifecycle, sub)
            sub = lifecycle.approve_when_placed(sub)
            self._order_known(context, sub)
            if not self.wait_for_completion:
                return self._approved(sub)
            try:
                lifecycle.await_completion(sub)
                return self._deliver(context, sub, self._fetch_result(lifecycle, sub))
            except ResultNotReadyError as not_yet:  # a close seen, then reorged away: wait again
                self.log.warning("%s; waiting again", not_yet)
            except OperatorFaultError as fault:
                sub = lifecycle.resubmit(self._task_spec(), sub, fault)
                self._publish(context, sub)

    def _finish(self, context: Context, lifecycle: TaskLifecycle, sub: Submission) -> Any:
        if not self.wait_for_completion:
            return self._approved(sub)
        try:
            return self._deliver(context, sub, self._fetch_result(lifecycle, sub))
        except ResultNotReadyError as not_yet:  # a close seen, then reorged away: wait for it again
            self.log.warning("%s; waiting again", not_yet)
        except OperatorFaultError as fault:
            sub = lifecycle.resubmit(self._task_spec(), sub, fault)
            self._publish(context, sub)
        return self._go_on(context, lifecycle, sub)

    @staticmethod
    def _approved(sub: Submission) -> dict[str, Any]:
        return {"order_id": sub.order_id, "do_request_id": sub.do_request_id}

    def _deliver(self, context: Context, sub: Submission, result: TaskResult | StoredResult) -> Any:
        self._push(context, result_cid=result.result_cid, task_code_name=result.task_code_name)
        self._result = result.result_cid, result.task_code_name
        self._announce_result(context, sub, result)
        if not result.success:
            detail = "(the error text is withheld: confidential=True)" if self.confidential else result.text
            raise EthernityTaskFailed(result.order_id, result.task_code, result.task_code_name, detail)
        return self._result_value(context, sub, result)

    def on_kill(self) -> None:
        """Cancel the DO request if no node has booked it yet (the escrow comes back)."""
        submission = getattr(self, "_submission", None)
        if submission is not None and submission.order_id is None and submission.do_request_id is not None:
            try:
                if self.hook.cancel_task(submission.do_request_id):
                    self.log.info("Cancelled DO request %s on kill", submission.do_request_id)
            except Exception as exc:  # never let cleanup hide the kill
                self.log.warning("Could not cancel DO request %s: %s", submission.do_request_id, exc)
