"""What the parts of the devnet IPFS API share: file names, limits, the logger, the API error."""

from __future__ import annotations

import logging
from http import HTTPStatus

log = logging.getLogger("ethernity.devnet.ipfs")

VERSION = "0.22.0-devnet"
CONTROL_FILE = "ipfs-control.json"
TOKEN_FILE = "ipfs-token"
INDEX_FILE = "cid-index.json"
COPY_BUFFER = 1024 * 1024
MAX_PART_HEADERS = 16 * 1024
EXIT_PORT_IN_USE = 98
PID_HEADER = "X-Devnet-Pid"
GOGC = "25"  # the core reads a whole file into memory on cat: collect its garbage early (64 MiB cat: ~2.6x, not ~3.6x)


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
