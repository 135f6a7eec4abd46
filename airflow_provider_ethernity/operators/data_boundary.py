"""Where a task's data may go in Airflow: inputs read from storage, results by reference or into storage.

By default the input dataset is a template field (Airflow keeps it rendered in ``rendered_task_instance_fields``)
and the decrypted result is the task's XCom value: both in clear in Airflow's metadata database, and shown in
the UI. For big or confidential data the operator can instead:

* read the input at run time from ``input_path`` (an ``ObjectStoragePath`` URI such as ``file://``, ``s3://``,
  ``gs://``, or ``ipfs://<CID>`` read through the connection's IPFS API): only the path is rendered and stored;
* write the decrypted result to ``result_path`` (an ``ObjectStoragePath`` URI): XCom holds only the path and ids;
* return a reference (``result_mode="reference"``): XCom holds the ids a consumer needs to fetch, verify and
  decrypt the result itself (:meth:`EthernityHook.fetch_result`), never the plaintext.

``confidential=True`` enforces it: no inline ``input_data``, the result by path or reference, and a task error's
text (the enclave's stderr may quote data) kept out of the exception, so neither plaintext reaches a table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ethernity.protocol.lifecycle import TaskLifecycle
    from airflow_provider_ethernity.protocol.results import StoredResult, TaskResult
    from airflow_provider_ethernity.protocol.submission import Submission

RESULT_MODES = ("value", "reference")
#: A result value bigger than this (as JSON) in XCom gets a warning naming result_path / result_mode.
XCOM_WARN_BYTES = 1024 * 1024


def check_boundary(input_data: Any, input_path: Any, result_path: Any, result_mode: str, confidential: bool) -> None:
    """Refuse contradictory or unsafe combinations at DAG parse time, naming the parameter."""
    if result_mode not in RESULT_MODES:
        raise ValueError(f"result_mode={result_mode!r} is invalid: allowed {', '.join(RESULT_MODES)}")
    if input_data is not None and input_path is not None:
        raise ValueError("input_data and input_path are both set: allowed one of them")
    if confidential and input_data is not None:
        raise ValueError(
            "confidential=True with input_data: Airflow would store the rendered input in clear "
            "(rendered_task_instance_fields); pass input_path (an ObjectStoragePath URI or ipfs://<CID>) instead"
        )
    if confidential and result_path is None and result_mode != "reference":
        raise ValueError(
            "confidential=True needs result_path (an ObjectStoragePath URI) or result_mode='reference': the "
            "result value would be stored in clear in XCom"
        )


class DataBoundaryMixin:
    """Result delivery by value, by reference or into storage (see the module docstring)."""

    result_path: Any
    result_mode: str
    confidential: bool
    ethernity_conn_id: str
    log: Any

    def _push(self, context: Context, **values: Any) -> None: ...  # provided by the operator

    def _fetch_result(self, lifecycle: TaskLifecycle, sub: Submission) -> TaskResult | StoredResult:
        """The verified result: streamed into ``result_path`` when it is set (never held in memory)."""
        if self.result_path is None:
            return lifecycle.fetch_result(sub)
        from airflow_provider_ethernity.hooks.ethernity import EthernityHook

        return lifecycle.write_result(sub, EthernityHook.result_destination(self.result_path))

    def _result_value(self, context: Context, sub: Submission, result: TaskResult | StoredResult) -> Any:
        """What the task returns (its XCom ``return_value``) for a successful result."""
        from airflow_provider_ethernity.protocol.results import StoredResult  # not at DAG parse time

        if isinstance(result, StoredResult):
            self.log.info("Result of order %s written to %s (%s bytes)", result.order_id, result.location, result.size)
            return {"path": result.location, "result_cid": result.result_cid, "order_id": result.order_id}
        if self.result_mode == "reference":
            return result_reference(sub, result, self.ethernity_conn_id)
        size = len(json.dumps(result.value, default=str))
        if size > XCOM_WARN_BYTES:
            self.log.warning(
                "The result of order %s is %.1f MiB and goes into XCom (Airflow's metadata database, in clear): "
                "set result_path to write it to storage, or result_mode='reference'",
                result.order_id,
                size / 1024**2,
            )
        return result.value


def result_reference(sub: Submission, result: TaskResult, conn_id: str) -> dict[str, Any]:
    """The ids a consumer needs to fetch, verify and decrypt a result itself (no secret, no plaintext)."""
    return {
        "ethernity_conn_id": conn_id,
        "order_id": result.order_id,
        "do_request_id": sub.do_request_id,
        "result_cid": result.result_cid,
        "challenge_salt": sub.challenge_salt,
    }
