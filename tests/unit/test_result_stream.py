"""Results streamed to storage: the box opened piece by piece, the Ascii85 and the envelope decoded piece by
piece, must give exactly what the one-shot path gives, and refuse exactly what it refuses."""

from __future__ import annotations

import functools
import io
import json
import logging
import os
from pathlib import Path

import pytest
from nacl.bindings import crypto_box_beforenm
from nacl.public import Box, PrivateKey

from airflow_provider_ethernity.protocol import crypto, envelope_stream
from airflow_provider_ethernity.protocol.envelope_stream import copy_result_text
from airflow_provider_ethernity.protocol.errors import ResultDecryptionError
from airflow_provider_ethernity.protocol.result_stream import OpenedResult, ResultFileSink
from airflow_provider_ethernity.protocol.results import decode_envelope
from airflow_provider_ethernity.protocol.secretbox_stream import BoxStream, hsalsa20

KEY = "0x" + "42" * 32


def envelope(data: object, kind: str = "text") -> str:
    return json.dumps({"ecld": 1, "type": kind, "data": data, "esr": None})


def stream(blob_hex: str, tmp_path: Path, piece: int) -> OpenedResult:
    sink = ResultFileSink(crypto.requester_box_secret(KEY), str(tmp_path))
    text = blob_hex.encode()
    for start in range(0, len(text), piece):
        sink.write(text[start : start + piece])
    return sink.finish()


def test_hsalsa20_is_the_subkey_libsodium_uses() -> None:
    # a box opened with our XSalsa20-Poly1305 composition equals libsodium's, for many sizes
    sender, receiver = PrivateKey.generate(), PrivateKey.generate()
    key = crypto_box_beforenm(bytes(sender.public_key), bytes(receiver))
    for size in (0, 1, 31, 32, 33, 63, 64, 65, 4095, 100_003):
        message = os.urandom(size)
        sealed = Box(sender, receiver.public_key).encrypt(message)
        box = BoxStream(key, sealed.nonce, sealed.ciphertext[:16])
        body = sealed.ciphertext[16:]
        opened = b"".join(box.update(body[i : i + 999]) for i in range(0, len(body), 999))
        assert opened == message and box.verify()
    assert len(hsalsa20(bytes(32), bytes(16))) == 32
    with pytest.raises(ValueError, match="32-byte key"):
        hsalsa20(bytes(31), bytes(16))


PLAINTEXTS = [
    envelope("plain ascii " * 50_000),
    envelope('quotes " and \\ backslashes \\" \n\t\r\b\f / ' * 3000),
    envelope("émoji 😀 and 中文 and \u2028 " * 5000),  # \u escapes and surrogate pairs (ensure_ascii)
    json.dumps({"ecld": 1, "type": "text", "data": "😀" * 20_000, "esr": None}, ensure_ascii=False),
    envelope("ZGF0YQ==" * 1000, kind="base64"),
    envelope({"rows": [1, 2, {"a": "b"}]}, kind="json"),  # decoded in memory
    envelope(None),
    "not an envelope: plain text " * 1000,
    '{"looks": "like json but is not an envelope"}',
    "",
    "\x00" * 70_000 + "zeros fold to z in Ascii85",
]


#: Every plaintext in odd and in large pieces; the small ones also byte by byte (slow for the large ones).
CASES = [
    pytest.param(text, piece, id=f"{n}-{piece}")
    for n, text in enumerate(PLAINTEXTS)
    for piece in (7, 4096, 1 << 20, *((1,) if len(text) < 5000 else ()))
]


@pytest.mark.parametrize(("plaintext", "piece"), CASES)
def test_a_streamed_result_is_what_the_one_shot_path_returns(plaintext: str, piece: int, tmp_path: Path) -> None:
    blob = crypto.seal_result(plaintext, crypto.requester_public_key_hex(KEY))
    opened = stream("0x" + blob + "\n", tmp_path, piece)
    assert opened.checksum == crypto.sha256_hex(plaintext)
    opened.file.seek(0)
    assert opened.file.read() == plaintext.encode("utf-8")
    assert list(tmp_path.iterdir()) == [], "the plaintext file has a name: a killed task would leave it behind"
    kind, _, text = decode_envelope(plaintext)
    target = tmp_path / "result.txt"
    assert copy_result_text(opened.file, lambda: target.open("wb")) == (kind, len(text.encode("utf-8")))
    assert target.read_bytes() == text.encode("utf-8")


def test_a_tampered_box_is_refused_as_such(tmp_path: Path) -> None:
    blob = bytearray(bytes.fromhex(crypto.seal_result(envelope("x" * 1000), crypto.requester_public_key_hex(KEY))))
    blob[-1] ^= 1
    with pytest.raises(ResultDecryptionError, match="authentication check"):
        stream(blob.hex(), tmp_path, 100)
    assert list(tmp_path.iterdir()) == [], "the unauthenticated plaintext was left on disk"


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        ("abc", "odd number of hex digits"),
        ("00" * 40, "shorter than the 72"),
        ("zz", "(?i)non-hexadecimal"),
    ],
)
def test_bad_hex_is_refused(blob: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises((ResultDecryptionError, ValueError), match=reason):
        stream(blob, tmp_path, 3)
    for leftover in tmp_path.iterdir():  # a ValueError mid-stream leaves the sink to its owner's discard()
        leftover.unlink()


def _seal_bytes(plain_ascii85: bytes) -> str:
    """Seal raw bytes as the box content (what a damaged enclave could produce)."""
    ephemeral = PrivateKey.generate()
    receiver = PrivateKey(crypto.requester_box_secret(KEY))
    sealed = Box(ephemeral, receiver.public_key).encrypt(plain_ascii85)
    return (bytes(ephemeral.public_key) + sealed.nonce + sealed.ciphertext).hex()


def test_a_box_without_ascii85_or_utf8_inside_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ResultDecryptionError, match="Ascii85"):
        stream(_seal_bytes(b"~~~ not ascii85 ~~~"), tmp_path, 64)
    with pytest.raises(ResultDecryptionError, match="not UTF-8"):
        stream(_seal_bytes(crypto.a85encode(b"\xff\xfe bad utf-8")), tmp_path, 64)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "plaintext",
    [
        '{"ecld": 1, "type": "text", "data": "cut inside its data',
        '{"ecld": 1, "type": "text", "data": "closed", but not JSON after it}',
        '{"ecld": 1, "type": "text", "data": "bad escape \\q"}',
    ],
)
def test_what_only_looks_like_an_envelope_is_the_value_itself(plaintext: str, tmp_path: Path) -> None:
    """As in the one-shot path: a plaintext that does not decode as an envelope is the task's value; the
    destination, already started, is written again from its start."""
    assert decode_envelope(plaintext) == ("text", plaintext, plaintext)
    opened = stream(crypto.seal_result(plaintext, crypto.requester_public_key_hex(KEY)), tmp_path, 10)
    target = tmp_path / "result.txt"
    assert copy_result_text(opened.file, lambda: target.open("wb")) == ("text", len(plaintext.encode()))
    assert target.read_text() == plaintext


def test_a_degenerate_ephemeral_key_is_a_corrupted_box_not_a_library_error(tmp_path: Path) -> None:
    blob = bytes(32) + bytes(24) + bytes(16) + b"x" * 40  # an all-zero ephemeral key: no shared key exists
    with pytest.raises(ResultDecryptionError, match="authentication check"):
        stream(blob.hex(), tmp_path, 50)


ODD_PLAINTEXTS = [
    '{"ecld": 1, "type": "text", "data": "raw\ncontrol character", "esr": null}',  # json.loads refuses it
    '\x0b{"ecld": 1, "type": "text", "data": "x"}',  # \v before the object: not JSON whitespace
    '{\x0c"ecld": 1, "type": "text", "data": "x"}',
    '{"ecld": 1, "type": "text", "data": "first", "data": "second"}',  # the last duplicate wins
    '{"ecld": 1, "type": "text", "data": "a", "type": "json"}',
    '{"ecld": 1, "type": "text", "data": "a", "ecld": 2}',
    " " * 5000 + '{"ecld": 1, "type": "text", "data": "after much whitespace"}',
    '{"ecld": 1, "type": "text", "data": "x", "esr": {"data": "nested keys are not the envelope\'s"}}',
    '{"ecld": 1, "type": "text", "data": "x"} trailing',
]


@pytest.mark.parametrize("plaintext", ODD_PLAINTEXTS, ids=range(len(ODD_PLAINTEXTS)))
def test_unusual_envelopes_decode_exactly_as_decode_envelope(plaintext: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(envelope_stream, "PIECE", 7)
    opened = stream(crypto.seal_result(plaintext, crypto.requester_public_key_hex(KEY)), tmp_path, 64)
    target = tmp_path / "result.txt"
    kind, _, text = decode_envelope(plaintext)
    assert copy_result_text(opened.file, lambda: target.open("wb")) == (kind, len(text.encode("utf-8")))
    assert target.read_text() == text


def test_random_strings_cut_anywhere_decode_as_json_loads(tmp_path: Path, monkeypatch) -> None:
    import random

    rng = random.Random(7)
    alphabet = ['"', "\\", "a", "é", "😀", "\n", "\u2028", "/", "\t", "z", " "]
    for _ in range(200):
        value = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        plaintext = json.dumps({"ecld": 1, "type": "text", "data": value, "esr": None}, ensure_ascii=rng.random() < 0.5)
        monkeypatch.setattr(envelope_stream, "PIECE", rng.randint(1, 40))
        data = io.BytesIO(plaintext.encode("utf-8"))
        target = tmp_path / "value.txt"
        assert copy_result_text(data, functools.partial(target.open, "wb")) == ("text", len(value.encode("utf-8")))
        assert target.read_bytes().decode("utf-8") == value


def test_a_lone_surrogate_value_is_an_error_and_a_failing_destination_is_not_swallowed(tmp_path: Path) -> None:
    lone = io.BytesIO(b'{"ecld": 1, "type": "text", "data": "\\ud83dx"}')
    with pytest.raises(ValueError, match="lone surrogate"):
        copy_result_text(lone, lambda: (tmp_path / "out").open("wb"))

    class _Full(io.BytesIO):
        def write(self, data):
            raise ValueError("the destination refused the write")

    good = io.BytesIO(envelope("value").encode())
    with pytest.raises(ValueError, match="destination refused"):
        copy_result_text(good, _Full)


class _DropsMidway:
    """A destination (an ``ObjectStoragePath`` in production) whose connection drops after the first piece: the
    file it opens keeps what was written, as an object store commits on close."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def unlink(self, missing_ok: bool = False) -> None:
        self.path.unlink(missing_ok=missing_ok)

    def open(self, mode: str) -> io.RawIOBase:
        path = self.path

        class _Writer(io.RawIOBase):
            def __init__(self) -> None:
                self.out = path.open(mode)

            def writable(self) -> bool:
                return True

            def write(self, data) -> int:  # type: ignore[override]
                self.out.write(bytes(data)[:1])
                self.out.flush()
                raise ConnectionResetError("the storage connection dropped")

            def close(self) -> None:
                self.out.close()
                super().close()

        return _Writer()


def test_a_destination_that_fails_midway_is_removed_and_the_error_raised(tmp_path: Path) -> None:
    from airflow_provider_ethernity.protocol.results import OrderResult, ResultTransaction
    from airflow_provider_ethernity.protocol.results_fetch import ResultFetcher

    fetcher = ResultFetcher.__new__(ResultFetcher)  # _store needs no chain or IPFS
    fetcher.log = logging.getLogger("test")
    tx = ResultTransaction("0x1", "0x2", 1, 7, "v3", 0, "c" * 64, "e", "v3:x:baf")
    plaintext = envelope("a value that does not fit").encode()
    opened = OpenedResult(io.BytesIO(plaintext), "c" * 64, len(plaintext))
    target = _DropsMidway(tmp_path / "result.txt")
    with pytest.raises(ConnectionResetError, match="dropped"):
        fetcher._store(tx, 7, OrderResult("v3", b"", "baf"), opened, target)
    assert not target.path.exists(), "a partial result was left at the destination"

    class _NoUnlink(_DropsMidway):
        unlink = None  # type: ignore[assignment]

    kept = _NoUnlink(tmp_path / "kept.txt")
    with pytest.raises(ConnectionResetError):
        fetcher._store(tx, 7, OrderResult("v3", b"", "baf"), opened, kept)
    assert kept.path.read_bytes() == b"a"  # nothing to remove it with: the error still comes through
