"""Content identifiers as the official runner and node compute them, without an IPFS node.

Blobs are added with ``cid-version=1``, ``raw-leaves=true`` and ``chunker=size-262144``: one raw block
(``bafkrei…``) up to 256 KiB, otherwise a dag-pb UnixFS file tree over 256 KiB raw blocks, at most 174
links per node (``bafybei…``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

BLOCK_SIZE = 262_144
LINKS_PER_NODE = 174
_RAW = 0x55
_DAG_PB = 0x70


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


def _field(number: int, payload: bytes | int) -> bytes:
    """A protobuf field: an int is a varint (wire type 0), bytes are length-delimited (wire type 2)."""
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _cid_bytes(codec: int, block: bytes) -> bytes:
    return bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(block).digest()


def _to_text(cid: bytes) -> str:
    return "b" + base64.b32encode(cid).decode("ascii").lower().rstrip("=")


# A tree entry: (binary CID, Tsize = bytes of the whole subtree, filesize = file bytes under it).
_Entry = tuple[bytes, int, int]


def _file_node(children: list[_Entry]) -> _Entry:
    links = b"".join(_field(2, _field(1, cid) + _field(2, b"") + _field(3, tsize)) for cid, tsize, _ in children)
    filesize = sum(size for _, _, size in children)
    unixfs = _field(1, 2) + _field(3, filesize) + b"".join(_field(4, size) for _, _, size in children)
    block = links + _field(1, unixfs)  # dag-pb: Links before Data
    return _cid_bytes(_DAG_PB, block), len(block) + sum(t for _, t, _ in children), filesize


def cid_of_chunks(chunks: Iterable[bytes]) -> str:
    """The CID of the concatenation of ``chunks`` (each exactly BLOCK_SIZE bytes but the last)."""
    leaves: list[_Entry] = []
    first: bytes | None = None
    for chunk in chunks:
        if first is None:
            first = chunk
        leaves.append((_cid_bytes(_RAW, chunk), len(chunk), len(chunk)))
    if len(leaves) <= 1:
        return _to_text(_cid_bytes(_RAW, first or b""))
    nodes = leaves
    while len(nodes) > 1:
        nodes = [_file_node(nodes[i : i + LINKS_PER_NODE]) for i in range(0, len(nodes), LINKS_PER_NODE)]
    return _to_text(nodes[0][0])


def _split(data: bytes) -> Iterator[bytes]:
    if not data:
        yield b""
    for offset in range(0, len(data), BLOCK_SIZE):
        yield data[offset : offset + BLOCK_SIZE]


def _read_blocks(fh: BinaryIO) -> Iterator[bytes]:
    while True:
        block = fh.read(BLOCK_SIZE)
        if not block:
            return
        yield block


def compute_cid(data: bytes) -> str:
    """The CIDv1 that ``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144`` gives ``data``."""
    return cid_of_chunks(_split(data))


def compute_file_cid(path: str | Path) -> str:
    """As :func:`compute_cid`, reading the file block by block (constant memory)."""
    with open(path, "rb") as fh:
        return cid_of_chunks(_read_blocks(fh))
