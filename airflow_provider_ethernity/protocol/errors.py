"""Exceptions raised by the protocol core.

Every message names what went wrong and, where it applies, the field, the value and the allowed range.
No message ever contains a private key.
"""

from __future__ import annotations

#: Longest string value an error message repeats; a longer one is described by its type and length only.
SHOWN_STR_LIMIT = 16


def shown(value: object) -> str:
    """How an error message shows a user-supplied value: numbers, None and bools as ``repr``, a short
    printable string as ``repr``, anything else by its type and length only.

    Scrubbing by construction: a secret pasted into the wrong field (a 64-hex key, a token, a long URL) is
    longer than SHOWN_STR_LIMIT, so it is never repeated.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        if len(value) <= SHOWN_STR_LIMIT and value.isprintable():
            return repr(value)
        return f"<a str of {len(value)} characters>"
    size = f" of {len(value)} items" if hasattr(value, "__len__") else ""
    return f"<a {type(value).__name__}{size}>"


#: The one URL path shown in full: the Kubo RPC prefix every IPFS API URL ends with.
KUBO_API_PATH = "/api/v0"


def shown_url(url: str) -> str:
    """A URL as error messages show it: scheme, host and port (and the Kubo API prefix ``/api/v0``) only.
    Credentials in the user part, an API key in the path (``/v3/<key>``) or in the query never appear; any
    other path or query is shown as ``/…``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an invalid port or IPv6 literal: show nothing of it
        return "<an invalid URL>"
    if not parts.scheme or not host:
        return shown(url)
    if ":" in host:
        host = f"[{host}]"
    path = parts.path.rstrip("/")
    if parts.query or parts.fragment or path not in ("", KUBO_API_PATH):
        path = "/…"
    return f"{parts.scheme}://{'***@' if parts.username or parts.password else ''}{host}{port}{path}"


class EthernityError(Exception):
    """Base class of every error the provider raises on purpose."""


class ConfigurationError(EthernityError, ValueError):
    """The connection or a parameter is invalid; raised before any transaction is sent."""


class ResourceValidationError(ConfigurationError):
    """A resource field (cpu, memory, ... taskPrice) is missing, mistyped or out of range."""

    def __init__(self, field: str, value: object, allowed: str, message: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(message or f"resources.{field}={shown(value)} is invalid: allowed {allowed}")


class InsufficientFundsError(EthernityError):
    """The wallet cannot pay for the task (token balance or gas); raised before any spend."""


class TransientError(EthernityError):
    """A fault worth retrying (RPC or IPFS unavailable, timeout)."""


class ChainError(EthernityError):
    """A permanent failure on the chain: a reverted transaction, a missing event, a wrong chain."""


class StorageError(EthernityError):
    """A permanent IPFS failure: rejected upload, unauthorised, unknown content."""


class ContentNotFoundError(StorageError):
    """The IPFS API answered but does not have (or cannot find in time) the content asked for: our storage
    works, the bytes are missing. For a result, the node's side (it may still be pinning them)."""


class EnclaveLookupError(EthernityError):
    """The trustedzone image is not in the image registry."""


class OperatorFaultError(EthernityError):
    """The node operator failed the task: a fault task code (37/39/40) or a result for this order that does
    not verify (signer, checksum). Confirmed at a closed order: resubmitting may succeed."""


class ResultVerificationError(OperatorFaultError):
    """The result of this order does not verify (wrong signer, bad checksum, undecodable): the node is at
    fault, so the task may be resubmitted."""


class ResultReplayError(ResultVerificationError):
    """The result on chain belongs to another order, contract or chain (a replayed or foreign blob). It is
    refused, and never resubmitted: paying again would reward the replay."""


class ResultNotReadyError(EthernityError):
    """The order is not closed at a confirmed depth yet, or its result is not readable yet: wait, never a
    fault."""


class CompletionTimeoutError(EthernityError):
    """The order did not close within the completion timeout; a retry re-attaches to it (nothing is paid)."""


class ResultCorruptedError(ResultVerificationError):
    """The result's bytes on IPFS are truncated, not hex, or do not open (the sealed box fails its
    authentication), under a result statement that verified: the node delivered damaged bytes."""


class ResultDecryptionError(EthernityError):
    """The result blob does not open: it is corrupted, truncated, or was sealed for another key; not retried.

    :func:`~airflow_provider_ethernity.protocol.results.open_order_result` turns it into a
    :class:`ResultCorruptedError` naming the order and the result's CID.
    """


class TaskFailedError(EthernityError):
    """The task ran in the enclave and returned a non-zero task code (an error of the task itself)."""

    def __init__(self, order_id: int, task_code: int, task_code_name: str, detail: str) -> None:
        self.order_id = order_id
        self.task_code = task_code
        self.task_code_name = task_code_name
        self.detail = detail
        super().__init__(f"order {order_id} failed with {task_code_name} ({task_code}): {detail}")


class OrderTimeoutError(EthernityError):
    """No node placed an order for the DO request in time (the request was cancelled)."""
