"""Large payloads are sealed, hashed and opened in pieces; the bytes must equal the one-shot forms."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from airflow_provider_ethernity.protocol import crypto
from airflow_provider_ethernity.protocol.crypto import HexDecoder, open_result, seal_result, sha256_hex
from tests.unit.test_golden import VECTORS


def test_sealed_envelope_is_the_runner_json_layout() -> None:
    data = bytes(range(256)) * 9000  # > STREAM_CHUNK: several pieces
    sealed = crypto.seal_for_enclave(data, VECTORS["sealed_for_enclave"]["certificate_pem"])
    text = base64.b64decode(sealed)
    envelope = json.loads(text)
    assert list(envelope) == ["ciphertext", "nonce", "authTag", "x", "y"]
    assert json.dumps(envelope).encode() == text  # exactly what json.dumps of the dict writes
    assert len(envelope["ciphertext"]) == 2 * len(data)


def test_string_input_is_sealed_and_hashed_as_utf8() -> None:
    text = "héllo wörld " * 200_000
    assert sha256_hex(text) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    sealed = crypto.seal_for_enclave(text, VECTORS["sealed_for_enclave"]["certificate_pem"])
    assert len(json.loads(base64.b64decode(sealed))["ciphertext"]) == 2 * len(text.encode("utf-8"))


@pytest.mark.parametrize("plaintext", ["", "x", "\x00" * 300_000 + "tail", "ab\x00\x00\x00\x00cd" * 70_000])
def test_results_open_across_pieces(plaintext: str) -> None:
    key = "0x" + "42" * 32
    blob = seal_result(plaintext, crypto.requester_public_key_hex(key))
    assert open_result(blob, key) == plaintext
    decoder = HexDecoder()
    text = ("0x" + blob + "\n").encode()
    for start in range(0, len(text), 7777):  # odd piece boundaries
        decoder.write(text[start : start + 7777])
    assert crypto.open_result_buffer(decoder.finish(), key).decode("utf-8") == plaintext


def test_odd_hex_is_refused() -> None:
    decoder = HexDecoder()
    decoder.write(b"abc")
    with pytest.raises(ValueError):
        decoder.finish()
