"""Exceptions raised by the protocol core.

Every message names what went wrong and, where it applies, the field, the value and the allowed range.
No message ever contains a private key.
"""

from __future__ import annotations


class EthernityError(Exception):
    """Base class of every error the provider raises on purpose."""


class ConfigurationError(EthernityError, ValueError):
    """The connection or a parameter is invalid; raised before any transaction is sent."""


class ResourceValidationError(ConfigurationError):
    """A resource field (cpu, memory, ... taskPrice) is missing, mistyped or out of range."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"resources.{field}={value!r} is invalid: allowed {allowed}")


class InsufficientFundsError(EthernityError):
    """The wallet cannot pay for the task (token balance or gas); raised before any spend."""


class TransientError(EthernityError):
    """A fault worth retrying (RPC or IPFS unavailable, timeout)."""


class ChainError(EthernityError):
    """A permanent failure on the chain: a reverted transaction, a missing event, a wrong chain."""


class StorageError(EthernityError):
    """A permanent IPFS failure: rejected upload, unauthorised, unknown content."""


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


class ResultDecryptionError(EthernityError):
    """The result blob cannot be decrypted with this wallet's key (usually a wrong key); not retried."""


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
