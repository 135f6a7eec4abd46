"""An input dataset staged in a local file, so a large input read from storage is never held in memory.

:func:`stage_input` copies the input's bytes (from an object store or IPFS, piece by piece) into a private
temporary file while checking what :func:`~.inputs.validate_input_data` checks of a string (UTF-8, not empty,
at most ``max_input_mb``) and hashing it. The sealing step then reads the file in pieces; the checksum and
the task's fingerprint use the hash. The caller removes the file (:meth:`InputFile.discard`) once the task
was submitted.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from airflow_provider_ethernity.protocol.errors import ConfigurationError

PIECE = 1 << 20


@dataclass(frozen=True)
class InputFile:
    """A staged input dataset: UTF-8 text of ``size`` bytes whose sha256 is ``sha256``."""

    path: str
    size: int
    sha256: str

    def pieces(self) -> Iterator[bytes]:
        with open(self.path, "rb") as fh:
            while piece := fh.read(PIECE):
                yield piece

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _shown(size: int) -> str:
    return f"{size / 1024**2:g} MiB" if size >= 1 << 20 else f"{size} bytes"


class InputStager:
    """Takes an input's bytes piece by piece (:meth:`write`, what ``IpfsClient.cat_into`` feeds a sink) into a
    private temporary file; :meth:`finish` checks the end and returns the :class:`InputFile`. Errors name
    ``input_path`` and ``source`` (never the data): not UTF-8 (with the byte offset), empty, or over
    ``limit_bytes`` (the connection's max_input_mb). On an error the file is removed."""

    def __init__(self, limit_bytes: int, source: str, directory: str | None = None) -> None:
        self.limit_bytes, self.source = limit_bytes, source
        fd, self.path = tempfile.mkstemp(prefix="ethernity-input-", dir=directory)  # readable by this user only
        self._out = os.fdopen(fd, "wb")
        self._digest, self._size = hashlib.sha256(), 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def write(self, piece: bytes) -> None:
        try:
            self._size += len(piece)
            if self._size > self.limit_bytes:
                limit = _shown(self.limit_bytes)
                raise ConfigurationError(
                    f"input_path={self.source!r} is over {limit}: allowed at most {limit} (the connection's "
                    "max_input_mb)"
                )
            try:
                self._utf8.decode(piece)
            except UnicodeDecodeError as exc:
                offset = self._size - len(piece) + exc.start
                raise ValueError(
                    f"input_path={self.source!r} is not UTF-8 text (byte {offset}): the enclave reads text"
                ) from None
            self._digest.update(piece)
            self._out.write(piece)
        except BaseException:
            self.discard()
            raise

    def finish(self) -> InputFile:
        try:
            self._out.close()
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                raise ValueError(f"input_path={self.source!r} is not UTF-8 text (it ends inside a character)") from None
            if self._size == 0:
                raise ConfigurationError(
                    f"input_path={self.source!r} is empty: the protocol has no empty input dataset; allowed a "
                    "non-empty file, or no input_path for no input"
                )
        except BaseException:
            self.discard()
            raise
        return InputFile(self.path, self._size, self._digest.hexdigest())

    def discard(self) -> None:
        self._out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def stage_input(pieces: Iterable[bytes], limit_bytes: int, source: str, directory: str | None = None) -> InputFile:
    """Stage an input given as pieces of bytes (see :class:`InputStager`)."""
    stager = InputStager(limit_bytes, source, directory)
    try:
        for piece in pieces:
            stager.write(piece)
    except BaseException:  # a read that failed midway (network, timeout, kill): no staged file left
        stager.discard()
        raise
    return stager.finish()


class _Catting(Protocol):
    def cat_into(
        self, cid: str, sink_factory: Callable[[], InputStager], max_bytes: int | None = None
    ) -> InputStager: ...


def stage_from_ipfs(ipfs: _Catting, cid: str, limit_bytes: int, source: str) -> InputFile:
    """Stage the content of ``cid`` read through an IPFS API client (a retried read starts a new file; the
    files of reads that failed are removed)."""
    stagers: list[InputStager] = []

    def stager() -> InputStager:
        stagers.append(InputStager(limit_bytes, source))
        return stagers[-1]

    staged: InputFile | None = None
    try:
        staged = ipfs.cat_into(cid, stager, max_bytes=limit_bytes + 1).finish()
    finally:
        for each in stagers:
            if staged is None or each.path != staged.path:
                each.discard()
    return staged
