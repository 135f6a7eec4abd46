"""DO requests, the requester's side of a task: the validated spec, sealing and upload, the allowance, the
``_addDORequest`` call, and the cancel/settle at the order timeout (a layer of :class:`~.client.EthernityClient`).

The lifecycle (:mod:`.lifecycle`) composes these steps with the write-ahead record; nothing here keeps state.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from airflow_provider_ethernity.protocol import metadata
from airflow_provider_ethernity.protocol.connection import LAGGING_READ_ATTEMPTS
from airflow_provider_ethernity.protocol.contracts import EnclaveDetails
from airflow_provider_ethernity.protocol.crypto import requester_public_key_hex, seal_for_enclave_into
from airflow_provider_ethernity.protocol.errors import ChainError, ConfigurationError, StorageError, TransientError
from airflow_provider_ethernity.protocol.events import RequestStatus
from airflow_provider_ethernity.protocol.input_file import InputFile
from airflow_provider_ethernity.protocol.inputs import validate_code, validate_input_data
from airflow_provider_ethernity.protocol.networks import check_trustedzone_pairing
from airflow_provider_ethernity.protocol.orders import OrderReads
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.settings import image_name
from airflow_provider_ethernity.protocol.storage import IntakeUploads, require_reachable_storage
from airflow_provider_ethernity.protocol.submission import TaskSpec
from airflow_provider_ethernity.protocol.transactions import RevertedError, SignedTx

#: Maximum sealed size of one artefact (code or input) the client uploads.
MAX_ARTEFACT_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class SubmittedTask:
    """What :meth:`EthernityClient.submit_task` leaves behind (no secret inside: the challenge is derived from
    the wallet key and ``challenge_salt``)."""

    do_request_id: int
    tx_hash: str
    from_block: int
    challenge_salt: str
    order_count_anchor: int | None
    requester: str
    node_address: str
    resources: dict[str, int] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        """Whether the request names one node."""
        return bool(self.node_address)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (for XCom)."""
        return asdict(self)


class RequestClient(OrderReads):
    """Placing, cancelling and settling DO requests."""

    def task_spec(
        self,
        code: str,
        input_data: str | InputFile | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
    ) -> TaskSpec:
        """Validate a task's parameters (errors name the field) into the spec its fingerprint covers.

        ``trustedzone`` and ``securelock`` default to the connection's; the trustedzone must pair with the
        network (the runner's -unsafe rule). A securelock equal to the trustedzone is the trustedzone's own image.
        """
        zone = image_name("trustedzone", trustedzone) or self.settings.trustedzone or ""
        if not zone:
            raise ConfigurationError("trustedzone is not set (connection field or operator parameter)")
        check_trustedzone_pairing(self.network, zone)
        lock = image_name("securelock", securelock) or self.settings.securelock or ""
        return TaskSpec(
            code=validate_code(code),
            input_data=validate_input_data(input_data, self.settings.max_input_bytes),
            resources=Resources.from_value(resources),
            trustedzone=zone,
            node_address=metadata.normalize_node_address(node_address),
            securelock="" if lock == zone else lock,
        )

    def prepare_submission(self, spec: TaskSpec) -> EnclaveDetails:
        """Everything checkable before spending: where the node will read the artefacts, the chain, the wallet
        and its funds, the enclave, the node."""
        require_reachable_storage(self.settings)  # a private IPFS no node can read fails before paying
        if not self._chain_verified:
            self.verify_chain()
        return self.preflight(spec.resources, spec.trustedzone, spec.node_address, spec.securelock)

    def ensure_allowance(self, amount_wei: int, record: Callable[[SignedTx], None] | None = None) -> str | None:
        """Approve the protocol to take ``amount_wei`` when a separate token needs it; returns the tx hash.

        Exactly the price is approved (least privilege, as the official runner does). The allowance is read at
        the pending state: a request this wallet already sent but is not mined yet has consumed its part. Call
        it under :meth:`submit_lock`. Two machines may sign byte-identical approvals at one nonce: that is one
        transaction (each finds it by its hash), and the request that then finds no allowance is re-approved
        and sent again by the lifecycle (its revert moved no token).
        """
        if self.network.token_is_protocol:
            return None
        if self.allowance("pending") >= amount_wei:
            return None
        call = self.token.functions.approve(self.network.protocol_address, amount_wei)
        signed = self.sender.send(call, "approve", record=record)
        self.sender.wait_receipt(signed, "approve")
        self.log.info(
            "Token allowance of %g %s approved (tx %s)", amount_wei / 10**18, self.network.token_name, signed.tx_hash
        )
        return signed.tx_hash

    def lost_allowance_race(self, exc: ChainError, amount_wei: int) -> bool:
        """Whether a failed ``_addDORequest`` of ``amount_wei`` lost a race with another submission of this wallet
        (another machine), which spent the allowance in between or set it anew since (so it may look sufficient
        again now). Such a request moved no token: approving and sending again is safe."""
        if refused_for_allowance(exc):
            return True
        return not self.network.token_is_protocol and self.allowance("latest") < amount_wei

    def _seal_and_add(self, data: str | bytes | InputFile, certificate_pem: str, what: str) -> str:
        """Seal into a temporary file and upload it from there: a large input is never held sealed in memory."""
        with tempfile.TemporaryFile(prefix="etny-sealed-") as sealed:
            size = seal_for_enclave_into(data, certificate_pem, sealed)
            if size > MAX_ARTEFACT_BYTES:
                length = f"{data.size} bytes" if isinstance(data, InputFile) else f"{len(data)} characters"
                raise ConfigurationError(
                    f"{what} is {length}; sealed it would be {size} bytes, over the limit of {MAX_ARTEFACT_BYTES} bytes"
                )
            try:
                if self.settings.uses_intake:  # held for the public intake, POSTed after the request's receipt
                    return self.intake.queue(sealed, what)
                return self.ipfs.add(sealed)
            except TransientError as exc:
                raise StorageError(f"could not upload the {what} to IPFS ({exc}); no transaction was sent") from None

    def do_request_call(self, spec: TaskSpec, enclave: EnclaveDetails, challenge: str) -> Any:
        """Seal and upload challenge, code and input; the ``_addDORequest`` call that names them."""
        challenge_cid = self._seal_and_add(challenge, enclave.certificate_pem, "challenge")
        code_cid = self._seal_and_add(spec.code, enclave.certificate_pem, "code")
        input_cid = (
            self._seal_and_add(spec.input_data, enclave.certificate_pem, "input dataset") if spec.input_data else ""
        )
        m1 = metadata.image_metadata(
            enclave.image_cid,
            spec.trustedzone,
            enclave.compose_cid,
            challenge_cid,
            requester_public_key_hex(self.settings.private_key or ""),
        )
        m2 = metadata.code_metadata(code_cid, spec.code)
        m3 = metadata.input_metadata(input_cid, spec.input_data)
        return self.protocol.functions._addDORequest(*spec.resources.contract_args(), m1, m2, m3, spec.node_address)

    def do_request_id_from(self, receipt: Any, tx_hash: str) -> int:
        """The DO request id an ``_addDORequest`` receipt created (its ``_addDORequestEV`` event)."""
        from web3.logs import DISCARD

        events = self.protocol.events._addDORequestEV().process_receipt(receipt, errors=DISCARD)
        if not events:
            raise ChainError(f"_addDORequest {tx_hash} succeeded but emitted no _addDORequestEV event")
        do_request_id = int(events[0]["args"]["_rowNumber"])
        if self.settings.uses_intake:  # the intake takes only CIDs of a request it can see
            self._flush_intake(do_request_id)
        return do_request_id

    @cached_property
    def intake(self) -> IntakeUploads:
        """Artefacts held until their request exists, then POSTed to the network's public intake."""
        return IntakeUploads(self.settings, logger=self.log)

    def _flush_intake(self, do_request_id: int) -> None:
        """POST the request's held artefacts to the intake; if that fails, cancel the request (escrow back)."""
        try:
            self.intake.flush(self, do_request_id)
        except StorageError as exc:
            cancelled = self.cancel_task(do_request_id)
            raise StorageError(
                f"{exc}; DO request {do_request_id} "
                + ("cancelled, its escrow returned" if cancelled else "could not be cancelled: run `ethernity reclaim`")
            ) from None

    def cancel_task(self, do_request_id: int) -> str | None:
        """Cancel a DO request no node has booked (the escrow comes back); None when it is not cancellable."""
        if self.get_request_status(do_request_id) != RequestStatus.AVAILABLE:
            return None
        try:
            signed = self.sender.send(self.protocol.functions._cancelDORequest(int(do_request_id)), "_cancelDORequest")
            self.sender.wait_receipt(signed, "_cancelDORequest")
        except ChainError:
            if self.get_request_status(do_request_id) == RequestStatus.CANCELED:
                return None  # cancelled meanwhile (another try, a reclaim)
            if self.get_request_status(do_request_id) == RequestStatus.BOOKED:
                return None  # a node booked it at the edge
            raise
        self.log.info("DO request %s cancelled, escrow returned (tx %s)", do_request_id, signed.tx_hash)
        return signed.tx_hash

    def settle_unplaced_request(
        self, do_request_id: int, from_block: int, order_count_anchor: int | None = None
    ) -> int | None:
        """At the order timeout: cancel the request (None: escrow back), or return the order of a node that
        booked it at the edge (then the task carries on, as the official runner does)."""
        if self.cancel_task(do_request_id):
            return None
        status = self.get_request_status(do_request_id)
        if status == RequestStatus.CANCELED:
            return None
        for _ in range(LAGGING_READ_ATTEMPTS):
            order_id = self.find_order(do_request_id, from_block, order_count_anchor)
            if order_id is not None:
                self.log.warning(
                    "A node booked DO request %s at the order timeout: carrying on with order %s",
                    do_request_id,
                    order_id,
                )
                return order_id
            time.sleep(min(2.0, self.network.block_time))
        raise ChainError(
            f"DO request {do_request_id} is {status.name} but its order cannot be found; its escrow stays in the "
            "request: run `ethernity reclaim` to see it"
        )


def refused_for_allowance(exc: ChainError) -> bool:
    """A request refused for its allowance, or mined and reverted. A mined revert passed its estimate just before
    it was signed, so the chain's state changed in between (another submission of the wallet); the next attempt
    is estimated again, and a lasting cause fails there, unsent."""
    return isinstance(exc, RevertedError) or "allowance" in str(exc).lower()
