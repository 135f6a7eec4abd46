"""Content identifiers exactly as ``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144`` computes them.

This is how the official Ethernity runner uploads, so computing the CID locally lets a client check that what an
IPFS API returned (or served) matches the content. Pure Python, no dependency:

* data of at most 262144 bytes is a single raw block: CIDv1, codec raw (0x55), sha2-256 -> ``bafkrei...``;
* larger data is cut into 262144-byte raw leaves under a balanced UnixFS tree of dag-pb nodes with at most
  174 links each (go-unixfs' balanced layout) -> CIDv1 dag-pb ``bafybei...``.

The same builder also gives Kubo's legacy default (``cid_version=0``: UnixFS-wrapped leaves, ``Qm...``), which is
what the embedded devnet node stores natively; the tests use it to check the encoding against the real Kubo core.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

BLOCK_SIZE = 262144  # Kubo's default chunker: size-262144
LINKS_PER_NODE = 174  # go-unixfs helpers.DefaultLinksPerBlock
CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
SHA2_256 = 0x12
UNIXFS_FILE = 2
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# ---------------------------------------------------------------------------------------------- encoding helpers
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _pb_varint(number: int, value: int) -> bytes:
    """A protobuf varint field (wire type 0)."""
    return _varint(number << 3) + _varint(value)


def _pb_bytes(number: int, payload: bytes) -> bytes:
    """A protobuf length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _unixfs_file(data: bytes | None, filesize: int, blocksizes: Iterable[int] = ()) -> bytes:
    """unixfs.pb ``Data`` message of a file node: Type, Data (leaves only), filesize, blocksizes (unpacked)."""
    out = _pb_varint(1, UNIXFS_FILE)
    if data:
        out += _pb_bytes(2, data)
    out += _pb_varint(3, filesize)
    return out + b"".join(_pb_varint(4, size) for size in blocksizes)


def _dag_pb(links: Iterable[tuple[bytes, int]], data: bytes) -> bytes:
    """A dag-pb ``PBNode`` in canonical order: Links (Hash, empty Name, Tsize) first, then Data."""
    encoded_links = (_pb_bytes(2, _pb_bytes(1, cid) + _pb_bytes(2, b"") + _pb_varint(3, tsize)) for cid, tsize in links)
    return b"".join(encoded_links) + _pb_bytes(1, data)


def _binary_cid(version: int, codec: int, block: bytes) -> bytes:
    multihash = bytes([SHA2_256, 32]) + hashlib.sha256(block).digest()
    if version == 0:
        return multihash
    return _varint(1) + _varint(codec) + multihash


def _b58encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    out = ""
    while number:
        number, rest = divmod(number, 58)
        out = _B58_ALPHABET[rest] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _B58_ALPHABET.find(char)
        if index < 0:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def cid_to_string(binary: bytes) -> str:
    """CIDv0 as base58btc (``Qm...``), CIDv1 as lower-case base32 multibase (``b...``), like Kubo prints them."""
    if binary[:1] == bytes([SHA2_256]):
        return _b58encode(binary)
    return "b" + base64.b32encode(binary).decode().lower().rstrip("=")


# ---------------------------------------------------------------------------------------------- decoding
def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(raw) and shift < 64:
        byte = raw[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


@dataclass(frozen=True)
class Cid:
    """A decoded CID: version, multicodec and the multihash bytes."""

    version: int
    codec: int
    multihash: bytes


def decode_cid(text: str) -> Cid:
    """Parse a CID string (``Qm...`` or multibase b/B/z/f/F); raises ``ValueError`` with the reason."""
    text = (text or "").strip()
    if not text:
        raise ValueError("empty CID")
    try:
        if len(text) == 46 and text.startswith("Qm"):
            raw = _b58decode(text)
        elif text[0] in "bB":
            body = text[1:].upper()
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        elif text[0] == "z":
            raw = _b58decode(text[1:])
        elif text[0] in "fF":
            raw = bytes.fromhex(text[1:])
        else:
            raise ValueError("unknown multibase prefix")
    except ValueError as exc:
        raise ValueError(f"invalid CID {text!r}: {exc}") from None
    except Exception as exc:  # binascii.Error is a ValueError, but be explicit about anything else
        raise ValueError(f"invalid CID {text!r}: {exc}") from None
    return _decode_binary(text, raw)


def _decode_binary(text: str, raw: bytes) -> Cid:
    if raw[:2] == bytes([SHA2_256, 32]) and len(raw) == 34:
        return Cid(0, CODEC_DAG_PB, raw)
    try:
        version, pos = _read_varint(raw, 0)
        codec, pos = _read_varint(raw, pos)
        _, digest_at = _read_varint(raw, pos)
        length, digest_at = _read_varint(raw, digest_at)
    except ValueError as exc:
        raise ValueError(f"invalid CID {text!r}: {exc}") from None
    if version != 1:
        raise ValueError(f"invalid CID {text!r}: unsupported CID version {version}")
    if len(raw) != digest_at + length:
        raise ValueError(f"invalid CID {text!r}: multihash length mismatch")
    return Cid(1, codec, raw[pos:])


# ---------------------------------------------------------------------------------------------- the DAG builder
@dataclass
class _Link:
    cid: bytes
    tsize: int  # cumulative DAG size (dag-pb link Tsize)
    filesize: int  # file bytes below this node (UnixFS blocksize)


@dataclass
class CidBuilder:
    """Streaming CID computation: feed bytes with :meth:`update`, then call :meth:`finish` once.

    Memory stays at one chunk plus one link per leaf, so multi-GiB files can be hashed while they stream.
    ``raw_leaves`` defaults to ``cid_version == 1``, like Kubo.
    """

    cid_version: int = 1
    raw_leaves: bool | None = None
    chunk_size: int = BLOCK_SIZE
    max_links: int = LINKS_PER_NODE
    size: int = 0
    _buffer: bytearray = field(default_factory=bytearray, repr=False)
    _levels: list[list[_Link]] = field(default_factory=lambda: [[]], repr=False)
    _leaves: int = 0

    def __post_init__(self) -> None:
        if self.cid_version not in (0, 1):
            raise ValueError(f"cid_version={self.cid_version} is invalid: allowed 0 or 1")
        if self.raw_leaves is None:
            self.raw_leaves = self.cid_version == 1
        if self.raw_leaves and self.cid_version == 0:
            raise ValueError("raw leaves need CIDv1")
        if not 1 <= self.chunk_size <= 1 << 20 or self.max_links < 2:
            raise ValueError(f"chunk_size={self.chunk_size} max_links={self.max_links} are invalid")

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.size += len(view)
        while len(view):
            take = min(self.chunk_size - len(self._buffer), len(view))
            self._buffer += view[:take]
            view = view[take:]
            if len(self._buffer) == self.chunk_size:
                self._add_leaf(bytes(self._buffer))
                self._buffer.clear()

    def finish(self) -> tuple[str, int]:
        """The root CID string and the cumulative DAG size (what Kubo's ``add`` reports as ``Size``)."""
        if self._buffer or not self._leaves:
            self._add_leaf(bytes(self._buffer))
            self._buffer.clear()
        if self._leaves == 1:
            root = self._levels[0][0]
            return cid_to_string(root.cid), root.tsize
        depth = 0
        while depth < len(self._levels) - 1:  # committing a level may fill the next one and add a level
            if self._levels[depth]:
                pending, self._levels[depth] = self._levels[depth], []
                self._add_link(depth + 1, self._commit(pending))
            depth += 1
        root = self._commit(self._levels[-1])
        return cid_to_string(root.cid), root.tsize

    def _add_leaf(self, chunk: bytes) -> None:
        self._leaves += 1
        if self.raw_leaves:
            self._add_link(0, _Link(_binary_cid(1, CODEC_RAW, chunk), len(chunk), len(chunk)))
            return
        node = _dag_pb((), _unixfs_file(chunk, len(chunk)))
        self._add_link(0, _Link(_binary_cid(self.cid_version, CODEC_DAG_PB, node), len(node), len(chunk)))

    def _add_link(self, depth: int, link: _Link) -> None:
        if depth == len(self._levels):
            self._levels.append([])
        level = self._levels[depth]
        if len(level) == self.max_links:  # full: it becomes a finished child of the level above
            self._add_link(depth + 1, self._commit(level))
            level = self._levels[depth] = []
        level.append(link)

    def _commit(self, links: list[_Link]) -> _Link:
        filesize = sum(link.filesize for link in links)
        data = _unixfs_file(None, filesize, (link.filesize for link in links))
        node = _dag_pb(((link.cid, link.tsize) for link in links), data)
        cid = _binary_cid(self.cid_version, CODEC_DAG_PB, node)
        return _Link(cid, len(node) + sum(link.tsize for link in links), filesize)


def compute_cid(
    data: bytes, *, cid_version: int = 1, raw_leaves: bool | None = None, chunk_size: int = BLOCK_SIZE
) -> str:
    """The CID ``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144`` gives ``data`` (by default)."""
    builder = CidBuilder(cid_version=cid_version, raw_leaves=raw_leaves, chunk_size=chunk_size)
    builder.update(data)
    return builder.finish()[0]


def compute_file_cid(source: str | Path | BinaryIO, **options: int | bool | None) -> str:
    """:func:`compute_cid` of a file's content, read in 1 MiB pieces (path or binary file object)."""
    builder = CidBuilder(**options)  # type: ignore[arg-type]
    if isinstance(source, (str, Path)):
        with open(source, "rb") as fh:
            return compute_file_cid(fh, **options)
    while piece := source.read(1 << 20):
        builder.update(piece)
    return builder.finish()[0]


def cid_of_chunks(chunks: Iterable[bytes]) -> str:
    """:func:`compute_cid` of the concatenation of ``chunks`` (any sizes; they are re-cut into blocks)."""
    builder = CidBuilder()
    for chunk in chunks:
        builder.update(chunk)
    return builder.finish()[0]
