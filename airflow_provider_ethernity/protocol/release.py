"""Releasing a superseded submission: a task that changed (code, input, resources...) submits anew, and the
request of its previous submission is cancelled first so that its escrow comes back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_ethernity.protocol.errors import ChainError
from airflow_provider_ethernity.protocol.submission import Phase, Submission

if TYPE_CHECKING:
    from airflow_provider_ethernity.protocol.client import EthernityClient
    from airflow_provider_ethernity.protocol.logs import Log


def release_superseded(client: EthernityClient, record: Submission, log: Log) -> None:
    """Cancel the request of ``record`` unless a node booked it; never raises (the new submission must not
    depend on the old one's cleanup)."""
    sub = _recover_request(client, record)
    if sub.do_request_id is None or sub.phase is Phase.CANCELLED:
        return
    try:
        if client.cancel_task(sub.do_request_id):
            log.info("Cancelled the previous DO request %s (escrow returned)", sub.do_request_id)
    except Exception as exc:
        log.warning("Could not cancel the previous DO request %s: %s", sub.do_request_id, exc)


def _recover_request(client: EthernityClient, sub: Submission) -> Submission:
    """A record whose request transaction was in flight: learn its DO request (if it was mined) so that
    releasing it returns its escrow. The record is not saved: a new submission replaces it."""
    intent = sub.intent
    if sub.phase is not Phase.SUBMITTING or intent is None or intent.label != "_addDORequest":
        return sub
    try:
        if not client.sender.resume(intent):
            return sub
        receipt = client.sender.wait_receipt(intent, intent.label)
        sub.do_request_id = client.do_request_id_from(receipt, intent.tx_hash)
    except ChainError:  # never mined, or reverted: no escrow to release
        pass
    return sub
