"""Reading and verifying a task result recorded on chain.

``_getResultFromOrder(order)`` returns ``<version>:<signed tx hex>:<result CID>``. The signed bytes are a
legacy (RLP, EIP-155 or pre-155) transaction, signed by the enclave's challenge wallet, calling
``_addResultToOrder(order, "<version>:<task code>:<sha256 of result>:<enclave challenge>")``. It is never
broadcast: it is the enclave's signed statement of the outcome. Verification binds it to this order,
contract and chain, checks its signer against the challenges, then the checksum of the decrypted result.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from airflow_provider_ethernity.protocol.crypto import (
    HexDecoder,
    TruncatedHexError,
    challenge_wallet_address,
    open_result_buffer,
    sha256_hex,
)
from airflow_provider_ethernity.protocol.errors import (
    ResultCorruptedError,
    ResultDecryptionError,
    ResultReplayError,
    ResultVerificationError,
)
from airflow_provider_ethernity.protocol.task_codes import SUCCESS, task_code_name

ADD_RESULT_SELECTOR = bytes.fromhex("14e9f384")  # _addResultToOrder(uint256,string)


@dataclass(frozen=True)
class OrderResult:
    """The result string of an order, split into its parts."""

    version: str
    transaction_bytes: bytes
    result_cid: str


@dataclass(frozen=True)
class ResultTransaction:
    """The decoded enclave-signed ``_addResultToOrder`` transaction."""

    sender: str
    to: str | None
    chain_id: int
    order_id: int
    version: str
    task_code: int
    checksum: str
    enclave_challenge: str
    result_string: str

    @property
    def task_code_name(self) -> str:
        return task_code_name(self.task_code)


def parse_order_result(text: str) -> OrderResult:
    """Split ``<version>:<tx hex>:<cid>``; raises :class:`ResultVerificationError` when malformed."""
    parts = (text or "").split(":")
    if len(parts) < 3 or not parts[1] or not parts[2]:
        raise ResultVerificationError(f"the order result {text[:80]!r} is not '<version>:<tx hex>:<cid>'")
    tx_hex = parts[1][2:] if parts[1].lower().startswith("0x") else parts[1]
    try:
        tx_bytes = bytes.fromhex(tx_hex)
    except ValueError:
        raise ResultVerificationError("the order result's transaction is not hex") from None
    return OrderResult(parts[0], tx_bytes, parts[2])


def decode_result_transaction(tx_bytes: bytes) -> ResultTransaction:
    """Decode a legacy signed ``_addResultToOrder`` transaction and recover its signer."""
    import rlp
    from eth_abi import decode as abi_decode
    from eth_account import Account
    from eth_utils import to_checksum_address

    if not tx_bytes or tx_bytes[0] < 0xC0:
        raise ResultVerificationError("the result transaction is not a legacy RLP transaction")
    try:
        fields_ = rlp.decode(tx_bytes)
        if len(fields_) != 9:
            raise ValueError(f"{len(fields_)} fields")
        _nonce, _gas_price, _gas, to, _value, data, v_raw, _r, _s = fields_
        v = int.from_bytes(v_raw, "big")
        chain_id = (v - 35) // 2 if v >= 35 else 0
        sender = Account.recover_transaction(tx_bytes)
        if data[:4] != ADD_RESULT_SELECTOR:
            raise ValueError("not an _addResultToOrder call")
        order_id, result_string = abi_decode(["uint256", "string"], data[4:])
        parts = result_string.split(":")
        version, code, checksum, enclave_challenge = parts[0], int(parts[1]), parts[2], parts[3]
    except ResultVerificationError:
        raise
    except Exception as exc:  # rlp/abi/eth_keys raise many types; all mean "unreadable"
        raise ResultVerificationError(f"the result transaction cannot be decoded: {exc}") from None
    return ResultTransaction(
        sender=sender,
        to=to_checksum_address(to) if to else None,
        chain_id=chain_id,
        order_id=int(order_id),
        version=version,
        task_code=code,
        checksum=checksum,
        enclave_challenge=enclave_challenge,
        result_string=result_string,
    )


def verify_binding(tx: ResultTransaction, order_id: int, protocol_address: str, chain_id: int) -> None:
    """The signed result must be for this order, this protocol contract and this chain (0 = pre-EIP-155)."""
    if tx.order_id != int(order_id):
        raise ResultReplayError(f"order {order_id}: the result transaction is for order {tx.order_id}")
    if (tx.to or "").lower() != protocol_address.lower():
        raise ResultReplayError(
            f"order {order_id}: the result transaction is addressed to {tx.to or 'no contract'}, "
            f"not the protocol contract {protocol_address}"
        )
    if tx.chain_id not in (0, int(chain_id)):
        raise ResultReplayError(
            f"order {order_id}: the result transaction is signed for chain {tx.chain_id}, not {chain_id}"
        )


def verify_signer(tx: ResultTransaction, order_id: int, client_challenge: str) -> None:
    expected = challenge_wallet_address(client_challenge, tx.enclave_challenge)
    if expected.lower() != tx.sender.lower():
        raise ResultVerificationError(
            f"order {order_id}: the result is signed by {tx.sender}, not by the enclave wallet {expected} "
            "derived from the challenges"
        )


def verify_checksum(tx: ResultTransaction, order_id: int, plaintext: str) -> None:
    check_checksum(tx, order_id, sha256_hex(plaintext))


def check_checksum(tx: ResultTransaction, order_id: int, actual: str) -> None:
    """The plaintext's sha256 (``actual``) must be the one the result statement signs."""
    if actual != tx.checksum:
        raise ResultVerificationError(
            f"order {order_id}: the result checksum {actual} does not match the signed checksum {tx.checksum}"
        )


def open_order_result(decoder: HexDecoder, eth_private_key: str, order_id: int, result_cid: str) -> str:
    """The plaintext of an order's result, from the :class:`HexDecoder` its IPFS content was streamed into.

    Truncated hex, a box that does not open, bad Ascii85 or UTF-8 raise :class:`ResultCorruptedError` (a
    :class:`ResultVerificationError`) naming the order and the CID, and what is wrong with the bytes: never
    the wallet key. The ciphertext buffer is released before the plaintext is decoded (the decoder is
    emptied), so a large result is held about twice, not three times.
    """
    where = f"order {order_id}: the result {result_cid}"
    try:
        blob = decoder.finish()
    except TruncatedHexError:
        raise ResultCorruptedError(
            f"{where} is truncated: its hex text ends with an odd number of digits (the node stored it cut short)"
        ) from None
    decoder.buffer = bytearray()  # the decoder no longer holds the ciphertext: ``blob`` is the one reference
    try:
        opened = open_result_buffer(blob, eth_private_key)
    except ResultDecryptionError as exc:
        raise ResultCorruptedError(f"{where} is corrupted: {exc}") from None
    del blob
    try:
        return opened.decode("utf-8")
    except UnicodeDecodeError:
        raise ResultCorruptedError(f"{where} is corrupted: the decrypted result is not UTF-8 text") from None


@dataclass
class TaskResult:
    """A verified, decrypted task result.

    ``value`` is the task's return value: for a result envelope of type ``json`` the decoded object, for
    ``text`` the string, for ``base64`` the base64 text; for a failed task the enclave's error text.
    ``text`` is the string view (what the official runner calls ``value``), ``raw`` the exact plaintext.
    """

    order_id: int
    success: bool
    task_code: int
    task_code_name: str
    value: Any
    text: str
    result_type: str
    raw: str
    result_cid: str
    checksum: str
    enclave_challenge: str
    signer: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StoredResult:
    """A verified result written to storage (:meth:`ResultFetcher.write_result`): the value is in the file,
    never in memory. ``text`` is the enclave's error text of a failed task (nothing is written then)."""

    order_id: int
    success: bool
    task_code: int
    task_code_name: str
    result_type: str
    result_cid: str
    checksum: str
    enclave_challenge: str
    signer: str
    location: str
    size: int
    text: str = ""


def decode_envelope(raw: str) -> tuple[str, Any, str]:
    """Decode the enclave's result envelope ``{"ecld": 1, "type": ..., "data": ...}``.

    Returns ``(type, value, text)``; anything that is not an envelope is plain text.
    """
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        try:
            envelope = json.loads(raw)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and envelope.get("ecld") == 1:
            kind = envelope.get("type", "text")
            data = envelope.get("data")
            if kind == "json":
                return "json", data, json.dumps(data, separators=(",", ":"))
            if kind == "base64":
                return "base64", data or "", data or ""
            text = "" if data is None else str(data)
            return "text", text, text
    return "text", raw, raw


def build_stored_result(
    tx: ResultTransaction, order_id: int, result_cid: str, kind: str, location: str, size: int, text: str = ""
) -> StoredResult:
    """The record of a result written to ``location`` (``size`` bytes), or of a failed task's ``text``."""
    return StoredResult(
        order_id=int(order_id),
        success=tx.task_code == SUCCESS,
        task_code=tx.task_code,
        task_code_name=tx.task_code_name,
        result_type=kind,
        result_cid=result_cid,
        checksum=tx.checksum,
        enclave_challenge=tx.enclave_challenge,
        signer=tx.sender,
        location=location,
        size=size,
        text=text,
    )


def build_task_result(tx: ResultTransaction, order_id: int, plaintext: str, result_cid: str) -> TaskResult:
    kind, value, text = decode_envelope(plaintext)
    return TaskResult(
        order_id=int(order_id),
        success=tx.task_code == SUCCESS,
        task_code=tx.task_code,
        task_code_name=tx.task_code_name,
        value=value,
        text=text,
        result_type=kind,
        raw=plaintext,
        result_cid=result_cid,
        checksum=tx.checksum,
        enclave_challenge=tx.enclave_challenge,
        signer=tx.sender,
    )


def sign_result_transaction(
    *,
    order_id: int,
    task_code: int,
    checksum: str,
    client_challenge: str,
    enclave_challenge: str,
    protocol_address: str,
    chain_id: int,
    version: str = "v3",
) -> str:
    """Enclave side (devnet): sign the ``_addResultToOrder`` statement with the challenge wallet; returns hex."""
    from eth_abi import encode as abi_encode
    from eth_account import Account

    from airflow_provider_ethernity.protocol.crypto import challenge_wallet_key

    data = ADD_RESULT_SELECTOR + abi_encode(
        ["uint256", "string"], [int(order_id), f"{version}:{task_code}:{checksum}:{enclave_challenge}"]
    )
    tx = {
        "nonce": 0,
        "gasPrice": 0,
        "gas": 1_000_000,
        "to": protocol_address,
        "value": 0,
        "data": data,
        "chainId": int(chain_id),
    }
    signed = Account.sign_transaction(tx, challenge_wallet_key(client_challenge, enclave_challenge))
    return str(signed.raw_transaction.hex())


def reference_ids(reference: dict[str, Any]) -> tuple[int, str]:
    """The order id and challenge salt of a result reference (what a ``result_mode="reference"`` task returns)."""
    try:
        return int(reference["order_id"]), str(reference["challenge_salt"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"not an Ethernity result reference (order_id and challenge_salt needed): {reference!r}"
        ) from None


_Result = TypeVar("_Result", TaskResult, StoredResult)


def matching_reference(reference: dict[str, Any], result: _Result) -> _Result:
    """``result``, when it is the one the reference names (its result CID, when the reference has one)."""
    if reference.get("result_cid") and reference["result_cid"] != result.result_cid:
        raise ValueError(f"order {result.order_id}'s result is {result.result_cid}, not {reference['result_cid']}")
    return result
