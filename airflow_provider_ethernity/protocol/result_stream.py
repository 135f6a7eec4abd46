"""A result opened as it streams in from IPFS, for results written to storage: memory stays flat.

:class:`ResultFileSink` takes the result's hex text piece by piece (as :meth:`IpfsClient.cat_into` reads
it), opens the NaCl box (:mod:`.secretbox_stream`), decodes the Ascii85 inside and writes the plaintext (the
enclave's envelope) to a private temporary file while hashing it. Nothing in that file may be used before
:meth:`ResultFileSink.finish` has checked the box's tag, and the caller has checked the signed checksum.
:func:`copy_result_text` then writes the task's return value (the envelope's ``data``) to the destination,
decoding the JSON string on the fly.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import os
import re
import tempfile
from base64 import a85decode
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO

from airflow_provider_ethernity.protocol.crypto import (
    MIN_RESULT_BLOB,
    STREAM_CHUNK,
    HexDecoder,
    TruncatedHexError,
    _undecryptable,
)
from airflow_provider_ethernity.protocol.results import decode_envelope
from airflow_provider_ethernity.protocol.secretbox_stream import BoxStream

_HEAD = 32 + 24 + 16  # ephemeral public key, nonce, tag
_WHITESPACE = b" \t\n\r\v"


@dataclass(frozen=True)
class OpenedResult:
    """The authenticated plaintext of a result, in a temporary file the caller removes."""

    path: str
    checksum: str  # sha256 hex of the plaintext (what the signed result statement names)
    size: int


class _A85Stream:
    """``base64.a85decode`` (no Adobe framing) over pieces: only whole 5-character groups are decoded."""

    def __init__(self) -> None:
        self._carry = b""

    def update(self, text: bytes) -> bytes:
        text = self._carry + text.translate(None, _WHITESPACE)
        # ``z`` (a whole zero group) is never inside a group: after the last one, whole groups of 5 remain
        tail = len(text) - (text.rfind(b"z") + 1)
        cut = len(text) - tail % 5
        self._carry = text[cut:]
        return a85decode(text[:cut]) if cut else b""

    def finish(self) -> bytes:
        return a85decode(self._carry) if self._carry else b""


class ResultFileSink(HexDecoder):
    """The sink one IPFS read streams a result into (a retried read starts a new one: :meth:`discard` it)."""

    def __init__(self, box_secret: bytes, directory: str | None = None) -> None:
        super().__init__()
        self._secret = box_secret
        self._head = bytearray()
        self._box: BoxStream | None = None
        self._a85 = _A85Stream()
        self._a85_error = False
        self._sha = hashlib.sha256()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._utf8_error = False
        self._size = 0
        fd, self.path = tempfile.mkstemp(prefix="ethernity-result-", suffix=".part", dir=directory)
        self._file: IO[bytes] = os.fdopen(fd, "wb")  # mkstemp: readable by this user only

    def emit(self, data: bytes) -> None:
        if self._box is None:
            need = _HEAD - len(self._head)
            self._head += data[:need]
            data = data[need:]
            if len(self._head) < _HEAD:
                return
            from nacl.bindings import crypto_box_beforenm

            key = crypto_box_beforenm(bytes(self._head[:32]), self._secret)
            self._box = BoxStream(key, bytes(self._head[32:56]), bytes(self._head[56:72]))
        if data:
            self._plain(self._box.update(data))

    def _plain(self, ascii85: bytes) -> None:
        if self._a85_error:
            return  # keep authenticating: a box that fails its tag is reported as such
        try:
            self._write(self._a85.update(ascii85))
        except ValueError:
            self._a85_error = True

    def _write(self, data: bytes) -> None:
        if data:
            if not self._utf8_error:
                try:
                    self._utf8.decode(data)
                except UnicodeDecodeError:
                    self._utf8_error = True
            self._sha.update(data)
            self._size += len(data)
            self._file.write(data)

    def finish(self) -> OpenedResult:  # type: ignore[override]
        """Check the hex, the box's tag and the Ascii85; :class:`ResultDecryptionError` saying which failed."""
        try:
            try:
                self.check_complete()
            except TruncatedHexError as exc:
                raise _undecryptable(str(exc)) from None
            if self._box is None:
                raise _undecryptable(
                    f"it is {len(self._head)} bytes, shorter than the {MIN_RESULT_BLOB} of an empty sealed box"
                )
            if not self._box.verify():
                raise _undecryptable("the sealed box fails its authentication check: the result bytes are corrupted")
            if not self._a85_error:
                try:
                    self._write(self._a85.finish())
                except ValueError:
                    self._a85_error = True
            if self._a85_error:
                raise _undecryptable("the opened box does not hold Ascii85 text: the enclave sealed damaged bytes")
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self._utf8_error = True
            if self._utf8_error:
                raise _undecryptable("the decrypted result is not UTF-8 text")
            self._file.close()
        except BaseException:
            self.discard()
            raise
        return OpenedResult(self.path, self._sha.hexdigest(), self._size)

    def discard(self) -> None:
        """Close and remove the temporary file (a failed or superseded read)."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


# ---------------------------------------------------------------------------------------------------- the envelope
#: The start of an envelope whose data is a string, as the enclave writes it (``json.dumps`` of a dict).
_ENVELOPE_HEAD = re.compile(rb'\A\s*\{\s*"ecld"\s*:\s*1\s*,\s*"type"\s*:\s*"(text|base64)"\s*,\s*"data"\s*:\s*"')
#: One JSON string token: a run of plain characters, an escape (a surrogate pair as one), or the closing quote.
_STRING_TOKEN = re.compile(
    r'[^"\\]+|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[0-9a-fA-F]{4}|\\["\\/bfnrt]|"'
)
_LONGEST_ESCAPE = 12


class _JsonStringStream:
    """Decodes the body of a JSON string (after its opening quote) piece by piece."""

    def __init__(self) -> None:
        self._carry = ""
        self.rest: str | None = None  # what follows the closing quote, once it was seen

    def feed(self, text: str, final: bool = False) -> str:
        buf, pos, out = self._carry + text, 0, []
        self._carry = ""
        while pos < len(buf):
            m = _STRING_TOKEN.match(buf, pos)
            near_end = len(buf) - pos < _LONGEST_ESCAPE and buf[pos] == "\\"
            if near_end and not final:  # an escape (or surrogate pair) may go on in the next piece
                self._carry = buf[pos:]
                break
            if m is None:
                raise ValueError(f"invalid JSON string escape {buf[pos : pos + 6]!r}")
            token = m.group()
            if token == '"':
                self.rest = buf[m.end() :]
                break
            out.append(token if token[0] != "\\" else json.loads(f'"{token}"'))
            pos = m.end()
        return "".join(out)


def _pieces(fh: IO[bytes]) -> Iterator[bytes]:
    while piece := fh.read(STREAM_CHUNK):
        yield piece


#: Opens the destination for writing, from its start (a second call starts it over).
_Opener = Callable[[], AbstractContextManager[IO[bytes]]]


class _Counted:
    def __init__(self, out: IO[bytes]) -> None:
        self.out, self.size = out, 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.out.write(data)


def copy_result_text(
    opened: OpenedResult, open_out: Callable[[], AbstractContextManager[IO[bytes]]]
) -> tuple[str, int]:
    """Write the task's return value as UTF-8 to ``open_out()``, as :func:`decode_envelope` reads it; returns
    its type and size in bytes. A ``text``/``base64`` envelope (what tasks return) and plain text stream;
    anything else (a ``json`` envelope) is decoded in memory. A plaintext that is not a well-formed envelope is
    the value itself (as in :func:`decode_envelope`): the destination is then written again, with it."""
    with open(opened.path, "rb") as fh:
        head = fh.read(4096)
        match = _ENVELOPE_HEAD.match(head)
        if match is not None:
            with open_out() as raw_out:
                out = _Counted(raw_out)
                try:
                    _copy_data_string(fh, match.end(), out)
                    return match.group(1).decode(), out.size
                except ValueError:
                    pass  # not an envelope after all: the plaintext is the value
        elif head.lstrip().startswith(b"{"):  # a json envelope, or JSON that is no envelope: in memory
            fh.seek(0)
            kind, _, text = decode_envelope(fh.read().decode("utf-8"))
            with open_out() as raw_out:
                raw_out.write(text.encode("utf-8"))
            return kind, len(text.encode("utf-8"))
        fh.seek(0)
        with open_out() as raw_out:
            out = _Counted(raw_out)
            for piece in _pieces(fh):
                out.write(piece)
        return "text", out.size


def _copy_data_string(fh: IO[bytes], start: int, out: _Counted) -> None:
    """Decode the envelope's data string from ``start`` (after its opening quote) into ``out``; ``ValueError``
    when the rest is not the end of a JSON object."""
    fh.seek(start)
    utf8 = codecs.getincrementaldecoder("utf-8")()
    string = _JsonStringStream()
    for piece in _pieces(fh):
        out.write(string.feed(utf8.decode(piece)).encode("utf-8"))
        if string.rest is not None:
            break
    else:
        out.write(string.feed(utf8.decode(b"", final=True), final=True).encode("utf-8"))
    if string.rest is None:
        raise ValueError("the result envelope ends inside its data string")
    rest = string.rest + utf8.decode(fh.read(), final=True)
    if not isinstance(json.loads('{"data": 0' + rest), dict):  # the envelope's other fields, and its end
        raise ValueError("the result envelope is not a JSON object")
