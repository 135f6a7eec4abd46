"""The devnet IPFS service: the Kubo RPC subset over the embedded Kubo core, on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_ethernity.devnet.ipfs_service import IpfsService
from airflow_provider_ethernity.devnet.ports import is_listening
from airflow_provider_ethernity.devnet.process import pid_alive
from airflow_provider_ethernity.protocol.cid import compute_cid
from airflow_provider_ethernity.protocol.errors import StorageError, TransientError
from airflow_provider_ethernity.protocol.ipfs import IpfsClient
from airflow_provider_ethernity.protocol.retry import RetryPolicy

pytestmark = pytest.mark.integration
FAST_RETRY = RetryPolicy(attempts=2, initial=0.05, max_wait=0.1, max_delay=2)
TOKEN = "devnet-ipfs-test-token"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsService]:
    svc = IpfsService(tmp_path_factory.mktemp("ipfs"), token=TOKEN, cat_timeout=2)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def client(service: IpfsService) -> Iterator[IpfsClient]:
    c = IpfsClient(service.api_url, TOKEN, retry=FAST_RETRY)
    yield c
    c.close()


@pytest.mark.parametrize("size", [0, 11, 262_144, 262_145, 3 * 1024 * 1024])
def test_add_cat_round_trip_with_runner_cids(client: IpfsClient, size: int) -> None:
    data = os.urandom(size)
    cid = client.add(data)
    assert cid == compute_cid(data)
    assert cid.startswith("bafkrei" if size <= 262_144 else "bafybei")
    assert client.cat(cid) == data
    client.pin(cid)


def test_version_and_id(service: IpfsService, client: IpfsClient) -> None:
    assert client.version().startswith("0.22")
    answer = httpx.post(f"{service.api_url}/id", headers={"Authorization": TOKEN})
    assert answer.status_code == 200 and answer.json()["ID"]


def test_unknown_cid_fails_within_the_timeout(client: IpfsClient) -> None:
    started = time.monotonic()
    with pytest.raises(StorageError, match="bafkrei"):
        client.cat(compute_cid(b"never added " + os.urandom(8)))
    assert time.monotonic() - started < 10


def test_token_is_required(service: IpfsService) -> None:
    assert httpx.post(f"{service.api_url}/version").status_code == 401
    assert httpx.post(f"{service.api_url}/version", headers={"Authorization": "wrong"}).status_code == 401
    assert httpx.post(f"{service.api_url}/version", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_unavailable_mode_is_transient_and_retried(service: IpfsService, client: IpfsClient) -> None:
    service.set_mode("unavailable")
    try:
        with pytest.raises(TransientError, match="503"):
            client.version()
    finally:
        service.set_mode("normal")
    assert client.version()


def test_listens_on_loopback_only(service: IpfsService) -> None:
    import socket

    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    for address in addresses - {"127.0.0.1"}:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            assert sock.connect_ex((address, service.port)) != 0


def test_stop_leaves_no_process_and_no_listener(tmp_path) -> None:
    svc = IpfsService(tmp_path / "ipfs")
    svc.start()
    pid, port = svc.pid, svc.port
    assert pid and pid_alive(pid) and is_listening(port)
    svc.stop()
    assert not pid_alive(pid)
    assert not is_listening(port)


def test_ipfshttpclient_talks_to_the_devnet_api(service: IpfsService) -> None:
    """``ipfshttpclient.Client(addr)`` (its ``connect()`` refuses Kubo newer than 0.8) works against the devnet."""
    import warnings

    import ipfshttpclient

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client = ipfshttpclient.Client(f"/ip4/127.0.0.1/tcp/{service.port}/http", headers={"Authorization": TOKEN})
        try:
            cid = client.add_bytes(b"through ipfshttpclient", opts={"cid-version": 1, "raw-leaves": True})
            assert cid == compute_cid(b"through ipfshttpclient")
            assert client.cat(cid) == b"through ipfshttpclient"
            assert client.version()["Version"].startswith("0.22")
        finally:
            client.close()
