"""A large input read from storage is staged in a file and sealed from it: the request it makes must be the
one the same text given inline makes (checksum, sealed bytes, metadata), and bad input is refused the same."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.protocol import crypto, metadata
from airflow_provider_ethernity.protocol.errors import ConfigurationError, StorageError
from airflow_provider_ethernity.protocol.input_file import InputStager, stage_from_ipfs, stage_input
from airflow_provider_ethernity.protocol.resources import Resources
from airflow_provider_ethernity.protocol.submission import TaskSpec
from tests.unit.test_golden import VECTORS

TEXT = "héllo wörld, 😀 " * 200_000  # several MiB, multi-byte characters across piece boundaries


def pieces(data: bytes, size: int = 65_537) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_a_staged_input_is_sealed_and_hashed_as_the_same_text_inline(tmp_path: Path) -> None:
    staged = stage_input(pieces(TEXT.encode()), 64 << 20, "file:///in.txt", str(tmp_path))
    assert staged.size == len(TEXT.encode()) and staged.sha256 == crypto.sha256_hex(TEXT)
    assert metadata.input_metadata("bafyx", staged) == metadata.input_metadata("bafyx", TEXT)
    pem = VECTORS["sealed_for_enclave"]["certificate_pem"]
    sealed = crypto.seal_for_enclave(TEXT.encode(), pem)
    from io import BytesIO

    out = BytesIO()
    crypto.seal_for_enclave_into(staged, pem, out)
    inline, from_file = (json.loads(base64.b64decode(x)) for x in (sealed, out.getvalue()))
    assert len(from_file["ciphertext"]) == len(inline["ciphertext"])  # same length (fresh keys differ)
    staged.discard()


def test_the_fingerprint_of_a_staged_input_is_that_of_the_same_text_inline(tmp_path: Path) -> None:
    def spec(data: object) -> TaskSpec:
        return TaskSpec("code", data, Resources.from_value(None), "tz", "")  # type: ignore[arg-type]

    one = stage_input([b"same text"], 100, "a", str(tmp_path))
    two = stage_input([b"same ", b"text"], 100, "b", str(tmp_path))
    other = stage_input([b"other text"], 100, "c", str(tmp_path))
    assert spec(one).fingerprint() == spec(two).fingerprint() != spec(other).fingerprint()
    assert spec(one).fingerprint() == spec("same text").fingerprint(), "a staged input is not the same task inline"
    assert spec(one).fingerprint() not in (spec(None).fingerprint(), spec("other").fingerprint())


@pytest.mark.parametrize(
    ("chunks", "error", "message"),
    [
        ([b"x" * 60, b"x" * 60], ConfigurationError, r"'src' is over 100 bytes: allowed at most 100 bytes"),
        ([b"ok", b"\xff"], ValueError, r"input_path='src' is not UTF-8 text \(byte 2\)"),
        ([b"ends inside \xc3"], ValueError, "ends inside a character"),
        ([], ConfigurationError, "input_path='src' is empty"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_leaves_no_file(chunks, error, message, tmp_path: Path) -> None:
    with pytest.raises(error, match=message):
        stage_input(chunks, 100, "src", str(tmp_path))
    assert list(tmp_path.iterdir()) == []


class _FlakyIpfs:
    """``IpfsClient.cat_into``: a retried read starts over with a new sink (the first one fails midway)."""

    def __init__(self, fail_first: bool = True, always: bool = False) -> None:
        self.fail_first, self.always = fail_first, always

    def cat_into(self, cid, sink_factory, max_bytes=None):
        for attempt in range(2):
            sink = sink_factory()
            sink.write(b"partial ")
            if (attempt == 0 and self.fail_first) or self.always:
                continue  # a transport error after some bytes: retried with a fresh sink
            sink.write(b"content")
            return sink
        raise StorageError("cat failed")


def test_ipfs_reads_that_were_retried_or_failed_leave_no_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    staged = stage_from_ipfs(_FlakyIpfs(), "bafyx", 100, "ipfs://bafyx")
    assert Path(staged.path).read_bytes() == b"partial content"
    assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(staged.path)]
    staged.discard()
    with pytest.raises(StorageError):
        stage_from_ipfs(_FlakyIpfs(always=True), "bafyx", 100, "ipfs://bafyx")
    assert list(tmp_path.iterdir()) == []


def test_a_stager_is_private_to_its_user(tmp_path: Path) -> None:
    stager = InputStager(10, "src", str(tmp_path))
    assert os.stat(stager.path).st_mode & 0o077 == 0
    stager.discard()


def test_a_read_that_fails_midway_leaves_no_staged_file(tmp_path: Path) -> None:
    def broken() -> Iterator[bytes]:
        yield b"the first piece"
        raise OSError("connection reset by the object store")

    with pytest.raises(OSError, match="connection reset"):
        stage_input(broken(), 1000, "s3://bucket/key", str(tmp_path))
    assert list(tmp_path.iterdir()) == []
