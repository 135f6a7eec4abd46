"""Ending a deferred task in the triggerer (``end_from_trigger``).

At TASK_COMPLETED the trigger fetches, verifies and decrypts the result itself and ends the task with it
(Airflow's ``TaskSuccessEvent``), so the task never resumes in a worker: one worker process per task instead
of two. Only the quick, ordinary case ends there: a successful task whose value is JSON, at most
:data:`MAX_RESULT_BYTES` sealed, read within :data:`READ_BUDGET_SECONDS` on a few threads of its own (a slow or
unreachable IPFS never holds the triggerer's shared threads). Anything else (a task error, a failed check, a late
or large result, a value that is not JSON) resumes the task in a worker, which has the whole read window, the
resubmission of operator faults and the usual errors. Reading is all the triggerer does here: nothing is signed
or spent.
"""

from __future__ import annotations

import asyncio
import functools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_ethernity.hooks.ethernity import EthernityHook
    from airflow_provider_ethernity.protocol.results import TaskResult

#: The largest result a triggerer decrypts into XCom; a bigger one is fetched in a worker (it also gets the
#: operator's warning about big values in XCom). The same bound as that warning's.
MAX_RESULT_BYTES = 1024 * 1024
#: Seconds the triggerer spends reading a result before leaving it to a worker (whose window is the order's).
READ_BUDGET_SECONDS = 20.0
#: The triggerer's result reads: bounded, and apart from the event loop's default threads.
_READ_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ethernity-result")


def resolve_end_from_trigger(requested: bool | None) -> bool:
    """An operator's ``end_from_trigger``: as requested, or for ``None`` True wherever ending in the triggerer
    loses nothing: no listener is registered (Airflow calls no listener for a task that ends there, and refuses a
    DAG that asks for it while listeners are registered) and XComs go to Airflow's own table (a custom XCom
    backend's code would run on the triggerer's event loop)."""
    if requested is not None:
        return bool(requested)
    from airflow.listeners.listener import get_listener_manager
    from airflow.sdk import conf

    if get_listener_manager().has_listeners:
        return False
    backend = conf.get("core", "xcom_backend", fallback="airflow.sdk.execution_time.xcom.BaseXCom")
    return backend.startswith("airflow.") and backend.endswith(".BaseXCom")


async def result_for_xcom(
    hook: EthernityHook, order_id: int, challenge_salt: str | None, log: Any
) -> TaskResult | None:
    """The verified, successful, JSON result of a closed order, or None: the task then resumes in a worker."""
    if not challenge_salt:
        return None
    read = functools.partial(
        hook.get_result, order_id, challenge_salt=challenge_salt, max_result_bytes=MAX_RESULT_BYTES
    )
    try:
        pending = asyncio.get_running_loop().run_in_executor(_READ_THREADS, read)
        result = await asyncio.wait_for(pending, READ_BUDGET_SECONDS)
    except asyncio.TimeoutError:
        log.warning("Order %s: the result was not read within %g s; a worker reads it", order_id, READ_BUDGET_SECONDS)
        return None
    except Exception as exc:
        log.warning("Order %s: the result is fetched in a worker instead (%s)", order_id, brief(exc))
        return None
    if not result.success:
        log.info("Order %s ended with %s: the task resumes in a worker to fail", order_id, result.task_code_name)
        return None
    try:
        json.dumps(result.value)
    except (TypeError, ValueError):
        return None  # not JSON: the worker pushes it through its XCom backend
    return result


async def push_xcoms(task_instance: Any, xcoms: dict[str, Any], log: Any) -> bool:
    """Push the task's XComs as its worker would: through the task SDK (the execution API, and the configured
    XCom backend), so a downstream task reads the values it would have read from a worker. False when this
    process cannot (no task SDK channel): the task then resumes in a worker. A ``return_value`` of None is not
    pushed (nor is it by a worker).

    Not through ``TaskSuccessEvent(xcoms=...)``: Airflow 3.3.2 stores those JSON-encoded once more than a worker's
    (``XComModel.set`` on the decoded value), so a task SDK reader gets the text ``'5'`` for ``5``, ``'"a"'`` for
    ``"a"``."""
    from airflow.sdk.execution_time.xcom import XCom

    ti = task_instance
    try:
        for key, value in xcoms.items():
            if key == "return_value" and value is None:
                continue
            await XCom.aset(key=key, value=value, dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                            map_index=ti.map_index)  # fmt: skip
    except Exception as exc:
        log.info("The task's XComs could not be pushed from the triggerer (%s): it resumes in a worker", brief(exc))
        return False
    return True


def brief(exc: BaseException) -> str:
    """An exception as one short line for a trigger's log or event."""
    return f"{type(exc).__name__}: {exc}"[:500]
