"""Drive deferrable operators and triggers in a test the way Airflow's worker and triggerer do, and count what
reached the chain."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_ethernity.hooks.ethernity import EthernityHook


async def fire(trigger: Any) -> dict:
    """Run a trigger until its first event (as the triggerer does) and return the event's payload."""
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def expect_deferral(step: Callable[[], Any]) -> TaskDeferred:
    """Run one worker step that must defer; return the deferral (trigger, method name, kwargs)."""
    try:
        step()
    except TaskDeferred as deferred:
        return deferred
    raise AssertionError("the step returned instead of deferring")


def resume(operator: Any, context: dict, deferred: TaskDeferred, event: dict) -> Any:
    """What the worker does when a trigger fires: call the named method with the event."""
    return getattr(operator, deferred.method_name)(context, event=event, **(deferred.kwargs or {}))


def run_deferrable(operator: Any, context: dict) -> tuple[Any, list[tuple[str, dict]]]:
    """Drive a deferrable operator as the triggerer would: execute, fire each trigger, resume."""
    serialized: list[tuple[str, dict]] = []
    step = lambda: operator.execute(context)  # noqa: E731
    for _ in range(10):
        try:
            return step(), serialized
        except TaskDeferred as deferred:
            serialized.append(deferred.trigger.serialize())
            event = asyncio.run(fire(deferred.trigger))
            step = lambda d=deferred, e=event: resume(operator, context, d, e)  # noqa: E731
    raise AssertionError("too many deferrals")


#: The connection the tests read the chain's truth through: the wallet of ``ethernity_default`` on anvil itself,
#: not through a profile's chain front (whose replica lags). Unset: ``ethernity_default``.
LEDGER_CONN_ID = "ethernity_ledger"


def ledger_hook() -> EthernityHook:
    """A hook on the chain's truth (``ethernity_ledger`` when a fixture set it, else ``ethernity_default``)."""
    if f"AIRFLOW_CONN_{LEDGER_CONN_ID.upper()}" in os.environ:
        return EthernityHook(LEDGER_CONN_ID)
    return EthernityHook()


def do_requests_count() -> int:
    """DO requests on the devnet's protocol contract."""
    return int(ledger_hook().client.protocol.functions._getDORequestsCount().call())


def wallet_nonce() -> int:
    """Transactions the ``ethernity_default`` wallet has sent, pending ones included."""
    client = ledger_hook().client
    return int(client.w3.eth.get_transaction_count(client.address, "pending"))


class Ledger:
    """What the requester has paid since it was made: DO requests placed and tokens spent."""

    def __init__(self) -> None:
        self.client = ledger_hook().client
        self.requests = do_requests_count()
        self.tokens = self.client.token_balance()

    def requests_placed(self) -> int:
        return do_requests_count() - self.requests

    def tokens_spent(self) -> float:
        return (self.tokens - self.client.token_balance()) / 10**18

    def unsettled(self) -> list:
        """This ledger's DO requests whose escrow is neither paid to a node (order closed) nor returned."""
        from airflow_provider_ethernity.protocol.reclaim import reclaim

        report = reclaim(self.client, dry_run=True)
        return [e for e in report.entries if e.do_request_id >= self.requests]

    def assert_paid_once(self, tasks: int, price: int) -> None:
        """The money invariant: one DO request per task instance, the balance down by exactly the prices,
        no order left OPEN and no request left AVAILABLE or BOOKED without a closed order."""
        self.assert_paid(requests=tasks, tokens=tasks * price)

    def assert_paid(self, requests: int, tokens: int) -> None:
        """Exactly ``requests`` DO requests and ``tokens`` tokens since this ledger was made, nothing unsettled
        (a confirmed resubmission pays for two requests; a cancelled one pays nothing)."""
        assert self.requests_placed() == requests, f"{self.requests_placed()} DO requests, expected {requests}"
        assert self.tokens_spent() == tokens, f"{self.tokens_spent()} tokens spent, expected {tokens}"
        assert self.unsettled() == [], f"unsettled escrow: {self.unsettled()}"
