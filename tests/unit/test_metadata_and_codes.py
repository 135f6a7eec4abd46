import re

import pytest

from airflow_provider_ethernity.protocol import metadata
from airflow_provider_ethernity.protocol.crypto import ZERO_CHECKSUM, sha256_hex
from airflow_provider_ethernity.protocol.errors import ConfigurationError
from airflow_provider_ethernity.protocol.events import decode_order_closed, decode_order_placed
from airflow_provider_ethernity.protocol.task_codes import OPERATOR_FAULT_CODES, is_operator_fault, task_code_name


def test_challenge_is_twenty_lowercase_hex():
    challenge = metadata.new_challenge()
    assert re.fullmatch(r"[0-9a-f]{20}", challenge)
    assert challenge != metadata.new_challenge()


def test_metadata_strings_round_trip():
    image = metadata.image_metadata("bafyimg", "etny-pynithy-testnet", "bafycompose", "bafychal", "0x" + "ab" * 32)
    assert image == f"v3:bafyimg:etny-pynithy-testnet:bafycompose:bafychal:0x{'ab' * 32}"
    parsed = metadata.parse_image_metadata(image)
    assert parsed.challenge_cid == "bafychal" and parsed.requester_public_key == "0x" + "ab" * 32
    code = metadata.code_metadata("bafycode", "print(1)")
    assert code == f"v3:bafycode:{sha256_hex('print(1)')}"
    assert metadata.parse_artefact_metadata(code).checksum == sha256_hex("print(1)")


def test_input_metadata_without_input_uses_the_zero_checksum():
    assert metadata.input_metadata(None, None) == f"v3::{ZERO_CHECKSUM}"
    assert ZERO_CHECKSUM == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert metadata.input_metadata("bafyin", "data") == f"v3:bafyin:{sha256_hex('data')}"


def test_bad_checksum_is_refused():
    with pytest.raises(ValueError, match="sha256"):
        metadata.artefact_metadata("cid", "b'abc'")


def test_node_address_normalisation():
    assert metadata.normalize_node_address(None) == ""
    assert metadata.normalize_node_address("0x" + "0" * 40) == ""
    assert metadata.normalize_node_address("0x" + "ab" * 20) == "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
    with pytest.raises(ConfigurationError, match="node_address"):
        metadata.normalize_node_address("node-7")


@pytest.mark.parametrize("text", ["v2:a:b", "v3:a", "nonsense"])
def test_malformed_metadata_is_refused(text):
    with pytest.raises(ValueError):
        metadata.parse_artefact_metadata(text)


def test_task_code_names():
    assert task_code_name(0) == "SUCCESS"
    assert task_code_name(4) == "BASE_EXCEPTION"
    assert task_code_name(33) == "EXECUTION_TIMEOUT"
    assert task_code_name(99) == "UNKNOWN_99"
    assert {37, 39, 40} == OPERATOR_FAULT_CODES
    assert is_operator_fault(39) and not is_operator_fault(4)


def test_event_data_decoding():
    data = (7).to_bytes(32, "big") + (3).to_bytes(32, "big") + (9).to_bytes(32, "big")
    assert decode_order_placed(data) == (7, 3, 9)
    assert decode_order_placed("0x" + data.hex()) == (7, 3, 9)
    assert decode_order_closed((5).to_bytes(32, "big")) == 5
    with pytest.raises(ValueError):
        decode_order_placed(b"\x00" * 32)
