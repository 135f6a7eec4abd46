import pytest

from airflow_provider_ethernity.protocol.crypto import (
    challenge_wallet_address,
    open_result,
    requester_public_key_hex,
    seal_result,
    sha256_hex,
)
from airflow_provider_ethernity.protocol.errors import ResultDecryptionError, ResultVerificationError
from airflow_provider_ethernity.protocol.results import (
    build_task_result,
    decode_envelope,
    decode_result_transaction,
    parse_order_result,
    sign_result_transaction,
    verify_binding,
    verify_checksum,
    verify_signer,
)

PROTOCOL = "0x" + "12" * 20
CLIENT, ENCLAVE = "0123456789abcdef0123", "fedcba9876543210fedc"


def _signed(order_id=5, code=0, checksum="a" * 64, chain_id=31337, to=PROTOCOL, client=CLIENT):
    return sign_result_transaction(
        order_id=order_id,
        task_code=code,
        checksum=checksum,
        client_challenge=client,
        enclave_challenge=ENCLAVE,
        protocol_address=to,
        chain_id=chain_id,
    )


def test_signed_result_decodes_and_verifies():
    parsed = parse_order_result(f"v3:0x{_signed()}:bafkreiresult")
    assert parsed.result_cid == "bafkreiresult"
    tx = decode_result_transaction(parsed.transaction_bytes)
    assert (tx.order_id, tx.task_code, tx.chain_id, tx.enclave_challenge) == (5, 0, 31337, ENCLAVE)
    assert tx.sender == challenge_wallet_address(CLIENT, ENCLAVE)
    verify_binding(tx, 5, PROTOCOL, 31337)
    verify_signer(tx, 5, CLIENT)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"order_id": 6}, "is for order 6"),
        ({"to": "0x" + "34" * 20}, "addressed to"),
        ({"chain_id": 1}, "signed for chain 1"),
    ],
)
def test_binding_rejects_other_order_contract_chain(kwargs, expected):
    tx = decode_result_transaction(bytes.fromhex(_signed(**kwargs)))
    with pytest.raises(ResultVerificationError, match=expected):
        verify_binding(tx, 5, PROTOCOL, 31337)


def test_wrong_signer_is_rejected():
    tx = decode_result_transaction(bytes.fromhex(_signed(client="ffffffffffffffffffff")))
    with pytest.raises(ResultVerificationError, match="not by the enclave wallet"):
        verify_signer(tx, 5, CLIENT)


def test_checksum_mismatch_is_rejected():
    tx = decode_result_transaction(bytes.fromhex(_signed(checksum=sha256_hex("right"))))
    verify_checksum(tx, 5, "right")
    with pytest.raises(ResultVerificationError, match="checksum"):
        verify_checksum(tx, 5, "tampered")


@pytest.mark.parametrize("text", ["", "v3:", "v3:zz:cid", "v3:abcd"])
def test_malformed_order_results(text):
    with pytest.raises(ResultVerificationError):
        parse_order_result(text)


def test_typed_and_garbage_transactions_are_refused():
    with pytest.raises(ResultVerificationError, match="legacy"):
        decode_result_transaction(b"\x02" + b"\x00" * 10)
    with pytest.raises(ResultVerificationError, match="cannot be decoded"):
        decode_result_transaction(b"\xc3\x01\x02\x03")


def test_result_sealing_round_trip_and_wrong_key():
    key = "0x" + "42" * 32
    blob = seal_result("héllo", requester_public_key_hex(key))
    assert open_result(blob, key) == "héllo"
    with pytest.raises(ResultDecryptionError):
        open_result(blob, "0x" + "43" * 32)


def test_envelopes_decode_to_values():
    assert decode_envelope('{"ecld": 1, "type": "text", "data": "hi", "esr": null}') == ("text", "hi", "hi")
    kind, value, text = decode_envelope('{"ecld": 1, "type": "json", "data": {"a": [1, 2]}, "esr": null}')
    assert (kind, value, text) == ("json", {"a": [1, 2]}, '{"a":[1,2]}')
    assert decode_envelope("BASE_EXCEPTION: boom") == ("text", "BASE_EXCEPTION: boom", "BASE_EXCEPTION: boom")
    assert decode_envelope('{"not": "an envelope"}')[1] == '{"not": "an envelope"}'


def test_task_result_marks_failures():
    tx = decode_result_transaction(bytes.fromhex(_signed(code=4, checksum=sha256_hex("BASE_EXCEPTION: x"))))
    result = build_task_result(tx, 5, "BASE_EXCEPTION: x", "cid")
    assert not result.success and result.task_code_name == "BASE_EXCEPTION" and result.value == "BASE_EXCEPTION: x"
