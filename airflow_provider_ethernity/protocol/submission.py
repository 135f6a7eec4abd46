"""The submission record: what one task instance has asked for and paid, written ahead of every spend.

A :class:`Submission` is the single source of truth a retry, a resumed deferral or a superseded try reads
before it may spend. It is a typed, JSON-serialisable record (``to_dict``/``from_dict``) that holds no
secret: ids, hashes, block numbers, the task's fingerprint and the public challenge salt.

A :class:`SubmissionStore` keeps one record per task instance. ``save`` must be durable and must fail
(:class:`FencedError`) when the caller is no longer allowed to write: that is how a superseded Airflow try
learns it must stop before spending.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any, Protocol

from airflow_provider_ethernity.protocol.errors import EthernityError
from airflow_provider_ethernity.protocol.input_file import InputFile
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.transactions import SignedTx


class FencedError(EthernityError):
    """This try may not spend: its task state cannot be read or written (it was superseded), or another try
    owns the submission. Nothing was sent."""


class Phase(str, Enum):
    """How far a submission got. Each phase is recorded before the step that leaves it may spend."""

    SUBMITTING = "submitting"  # artefacts uploaded; an allowance or _addDORequest may be in flight (``intent``)
    SUBMITTED = "submitted"  # the DO request exists; waiting for a node's order
    ORDER_PLACED = "order_placed"  # a node placed ``order_id``; approval may be in flight
    APPROVED = "approved"  # approved (or delegated to the pinned node); waiting for TASK_COMPLETED
    COMPLETED = "completed"  # the order closed and its result verified (success or task error)
    CANCELLED = "cancelled"  # the DO request was cancelled, its escrow returned


@dataclass(frozen=True)
class TaskSpec:
    """The rendered inputs of one task: what its fingerprint covers."""

    code: str
    input_data: str | InputFile | None  # a large input read from storage is staged in a file
    resources: Resources
    trustedzone: str
    node_address: str
    #: The dApp image run inside the trustedzone ("": the trustedzone's own image; a securelock equal to the
    #: trustedzone is stored as "", the same task).
    securelock: str = ""

    def fingerprint(self) -> str:
        """sha256 over code, input, resources, trustedzone, node and securelock: a changed task never re-attaches.

        The securelock is a part only when set, so the fingerprint of a task without one is what it was before
        securelocks existed (a retry after an upgrade still re-attaches to its paid request)."""
        digest = hashlib.sha256()
        data = self.input_data
        for part in (
            self.code,
            "\x00none" if data is None else data,
            json.dumps(self.resources.as_dict(), sort_keys=True),
            self.trustedzone,
            self.node_address.lower(),
            *((f"securelock:{self.securelock}",) if self.securelock else ()),
        ):
            if isinstance(part, InputFile):  # hashed as the same text given inline: the same task
                digest.update(part.size.to_bytes(8, "big"))
                for piece in part.pieces():
                    digest.update(piece)
                continue
            encoded = part.encode("utf-8", "surrogatepass")
            digest.update(len(encoded).to_bytes(8, "big"))
            digest.update(encoded)
        return digest.hexdigest()


def new_salt() -> str:
    """A public salt from which the wallet key derives the submission's secret challenge."""
    return secrets.token_hex(16)


@dataclass
class Submission:
    """One task instance's submission (see the module docstring). Only ids and public values."""

    fingerprint: str
    challenge_salt: str
    price: int  # whole tokens escrowed by the DO request
    duration: int  # hours
    node_address: str = ""
    phase: Phase = Phase.SUBMITTING
    intent: SignedTx | None = None  # the spend in flight: written before it is broadcast
    do_request_id: int | None = None
    request_tx: str | None = None
    from_block: int = 0
    order_count_anchor: int | None = None
    order_deadline: float = 0.0  # epoch seconds
    order_id: int | None = None
    approval_tx: str | None = None
    approved_at: float = 0.0  # epoch seconds; the result read window runs to approved_at + completion timeout
    resubmits: int = 0
    writer: str = ""  # id of the write that produced this copy (the fence compares it)

    @property
    def pinned(self) -> bool:
        return bool(self.node_address)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["phase"] = self.phase.value
        data["intent"] = self.intent.to_dict() if self.intent else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Submission:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["phase"] = Phase(values.get("phase", Phase.SUBMITTING.value))
        intent = values.get("intent")
        values["intent"] = SignedTx.from_dict(intent) if intent else None
        return cls(**values)


class SubmissionStore(Protocol):
    """Where a task instance keeps its submission record."""

    def load(self) -> Submission | None: ...

    def save(self, submission: Submission) -> None:
        """Durably replace the record; raise :class:`FencedError` when this caller may no longer write."""


class MemorySubmissionStore:
    """A store for one process (``run_task`` and tests): no other try exists to fence."""

    def __init__(self) -> None:
        self._data: dict[str, Any] | None = None

    def load(self) -> Submission | None:
        return Submission.from_dict(self._data) if self._data is not None else None

    def save(self, submission: Submission) -> None:
        self._data = json.loads(json.dumps(submission.to_dict()))


class KeyValueSubmissionStore:
    """A store over any ``get(key)``/``set(key, value)`` state (Airflow's ``task_state_store``).

    Every save writes a fresh ``writer`` id and reads the record back: a try whose task instance was moved on
    reads nothing (Airflow answers "not found" for a superseded try) or another writer's copy, and is fenced.
    """

    def __init__(self, state: Any, key: str) -> None:
        self._state = state
        self._key = key

    def load(self) -> Submission | None:
        try:
            raw = self._state.get(self._key)
        except Exception as exc:
            raise FencedError(f"the task state could not be read ({type(exc).__name__}); nothing was sent") from None
        return Submission.from_dict(raw) if raw else None

    def save(self, submission: Submission) -> None:
        submission.writer = secrets.token_hex(8)
        try:
            self._state.set(self._key, submission.to_dict())
            back = self._state.get(self._key)
        except Exception as exc:
            raise FencedError(
                f"the task state could not be written ({type(exc).__name__}): this try was superseded or lost its "
                "state; it stops before sending anything"
            ) from None
        if not isinstance(back, dict) or back.get("writer") != submission.writer:
            raise FencedError(
                "the task state did not keep this try's write: Airflow moved the task instance on (a superseded "
                "try) or another try owns the submission; this try stops before sending anything"
            )
