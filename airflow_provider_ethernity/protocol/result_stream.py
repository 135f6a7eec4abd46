"""A result opened as it streams in from IPFS, for results written to storage: memory stays flat.

:class:`ResultFileSink` takes the result's hex text piece by piece (as :meth:`IpfsClient.cat_into` reads
it), opens the NaCl box (:mod:`.secretbox_stream`), decodes the Ascii85 inside and writes the plaintext (the
enclave's envelope) to an unnamed temporary file while hashing it. Nothing in that file may be used before
:meth:`ResultFileSink.finish` has checked the box's tag, and the caller has checked the signed checksum.
:func:`~.envelope_stream.copy_result_text` then writes the task's return value (the envelope's ``data``) to the
destination, decoding the JSON string on the fly.
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from base64 import a85decode
from dataclasses import dataclass
from typing import IO

from airflow_provider_ethernity.protocol.crypto import (
    MIN_RESULT_BLOB,
    HexDecoder,
    TruncatedHexError,
    _undecryptable,
)
from airflow_provider_ethernity.protocol.secretbox_stream import BoxStream

_HEAD = 32 + 24 + 16  # ephemeral public key, nonce, tag
_WHITESPACE = b" \t\n\r\v"


@dataclass(frozen=True)
class OpenedResult:
    """The authenticated plaintext of a result, in an unnamed temporary file (gone when it is closed, or when
    the process dies: a killed task leaves no plaintext on disk)."""

    file: IO[bytes]
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
        self._bad_key = False
        self._directory = directory
        self._file: IO[bytes] | None = None  # created with the first plaintext: a read that finds nothing has none

    def emit(self, data: bytes) -> None:
        if self._box is None:
            need = _HEAD - len(self._head)
            self._head += data[:need]
            data = data[need:]
            if len(self._head) < _HEAD or self._bad_key:
                return
            from nacl.bindings import crypto_box_beforenm
            from nacl.exceptions import CryptoError

            try:
                key = crypto_box_beforenm(bytes(self._head[:32]), self._secret)
            except (CryptoError, ValueError):  # a degenerate ephemeral key (all zero, low order): no box opens
                self._bad_key = True
                return
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
            self._plaintext_file().write(data)

    def finish(self) -> OpenedResult:  # type: ignore[override]
        """Check the hex, the box's tag and the Ascii85; :class:`ResultDecryptionError` saying which failed."""
        try:
            try:
                self.check_complete()
            except TruncatedHexError as exc:
                raise _undecryptable(str(exc)) from None
            if self._bad_key:
                raise _undecryptable("the sealed box fails its authentication check: the result bytes are corrupted")
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
            plaintext = self._plaintext_file()
            plaintext.flush()
        except BaseException:
            self.discard()
            raise
        return OpenedResult(plaintext, self._sha.hexdigest(), self._size)

    def _plaintext_file(self) -> IO[bytes]:
        """The unnamed temporary file (O_TMPFILE, or unlinked at once; this user's only), made on first use."""
        if self._file is None:
            self._file = tempfile.TemporaryFile(prefix="ethernity-result-", dir=self._directory)  # noqa: SIM115
        return self._file

    def discard(self) -> None:
        """Close (and so remove) the temporary file: a failed or superseded read, or a result delivered."""
        if self._file is not None:
            self._file.close()
