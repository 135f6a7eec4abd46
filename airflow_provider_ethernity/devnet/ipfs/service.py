"""The devnet IPFS API as a process: :class:`IpfsService` spawns and stops it (the parent's side), :func:`main`
serves (the child's side, ``python -m airflow_provider_ethernity.devnet.ipfs --repo DIR --port N
[--token-file F]``)."""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path
from typing import Any

from airflow_provider_ethernity.devnet.errors import DevnetError
from airflow_provider_ethernity.devnet.ipfs.common import (
    CONTROL_FILE,
    EXIT_PORT_IN_USE,
    GOGC,
    PID_HEADER,
    TOKEN_FILE,
    log,
)
from airflow_provider_ethernity.devnet.ipfs.kubo import KuboCore
from airflow_provider_ethernity.devnet.ipfs.server import IpfsApiServer
from airflow_provider_ethernity.devnet.ports import free_port, port_is_free
from airflow_provider_ethernity.devnet.process import stop_pid

#: What the child process runs (``python -m``).
SERVER_MODULE = "airflow_provider_ethernity.devnet.ipfs"


class IpfsService:
    """The IPFS API as a child process in its own session, on a free loopback port."""

    def __init__(
        self, workdir: str | Path, token: str | None = None, port: int | None = None, cat_timeout: float = 10.0
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.token = token
        self.port = port
        self.cat_timeout = cat_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:  # never show the token
        return f"IpfsService({str(self.workdir)!r}, port={self.port})"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v0"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_file(self) -> Path:
        return self.workdir / "ipfs.log"

    def start(self, timeout: float = 60.0) -> None:
        """Spawn the server and return once ``POST /api/v0/version`` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / CONTROL_FILE).unlink(missing_ok=True)  # a fresh start serves normally
        fixed_port = self.port is not None
        if fixed_port and not port_is_free(self.port):  # type: ignore[arg-type]
            raise DevnetError(f"the devnet IPFS service did not start: 127.0.0.1:{self.port} is already in use")
        deadline = time.monotonic() + timeout
        try:
            for _attempt in range(1 if fixed_port else 3):
                self.port = self.port if fixed_port else free_port()
                self._spawn()
                if self._wait_ready(deadline):
                    return
                port_taken = self._proc is not None and self._proc.poll() == EXIT_PORT_IN_USE
                self.stop()
                if not port_taken or time.monotonic() > deadline:
                    break
        finally:
            (self.workdir / TOKEN_FILE).unlink(missing_ok=True)  # read by the child at startup
        tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
        raise DevnetError(f"the devnet IPFS service did not start; see {self.log_file}:\n{tail}")

    def _spawn(self) -> None:
        command = [sys.executable, "-m", SERVER_MODULE, "--repo", str(self.workdir / "repo"), "--port", str(self.port)]
        command += ["--workdir", str(self.workdir), "--cat-timeout", str(self.cat_timeout)]
        if self.token:
            command += ["--token-file", str(self._write_token())]
        env = {**os.environ, "GOGC": os.environ.get("GOGC", GOGC)}
        with open(self.log_file, "ab") as log_file:
            self._proc = subprocess.Popen(
                command,
                env=env,
                cwd=self.workdir,  # the Kubo core writes kubo.log into the working directory
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _write_token(self) -> Path:
        path = self.workdir / TOKEN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(self.token or "")
        return path

    def _wait_ready(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if self._answers_version():
                return True
            time.sleep(0.05)
        return False

    def _answers_version(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            connection.request("POST", "/api/v0/version", headers={"Authorization": self.token or ""})
            response = connection.getresponse()
            response.read()  # closing with unread data would reset the connection
            return response.status == HTTPStatus.OK and response.getheader(PID_HEADER) == str(self.pid)
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s; returns when the process is gone and the port is closed."""
        if self._proc is not None:
            stop_pid(self._proc.pid, grace=5.0)
            self._proc.wait()
            self._proc = None
        (self.workdir / TOKEN_FILE).unlink(missing_ok=True)

    def set_mode(self, mode: str) -> None:
        """Fault injection: "unavailable" answers 503 to everything; "normal" serves again."""
        if mode not in ("normal", "unavailable"):
            raise ValueError(f"mode={mode!r}: allowed 'normal' or 'unavailable'")
        tmp = self.workdir / f"{CONTROL_FILE}.tmp"
        tmp.write_text(json.dumps({"mode": mode}))
        tmp.replace(self.workdir / CONTROL_FILE)

    def __enter__(self) -> IpfsService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the devnet's IPFS API (Kubo RPC subset) on 127.0.0.1")
    parser.add_argument("--repo", required=True, help="the Kubo repository (created if missing)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workdir", help="control file and temporary files (default: the repo's parent)")
    parser.add_argument("--token-file", help="file holding the API token (0600); requests must present it")
    parser.add_argument("--cat-timeout", type=float, default=10.0, help="seconds to wait for content (cat, pin)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    repo = Path(args.repo).resolve()
    workdir = Path(args.workdir).resolve() if args.workdir else repo.parent
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # before the core loads: it opens kubo.log in the working directory
    token = (Path(args.token_file).read_text().strip() or None) if args.token_file else None
    try:
        server = IpfsApiServer(args.port, workdir, token, args.cat_timeout)
    except OSError as exc:
        log.error("cannot listen on 127.0.0.1:%s: %s", args.port, exc)
        return EXIT_PORT_IN_USE
    started = time.monotonic()
    server.core = KuboCore(repo)
    _install_signal_handlers(server)  # after the core started: the Go runtime claims SIGTERM when it loads
    log.info("devnet IPFS API on http://127.0.0.1:%s/api/v0 (node up in %.2f s)", args.port, time.monotonic() - started)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        _close_core(server.core)
        log.info("devnet IPFS API stopped")
        logging.shutdown()
        os._exit(0)  # threads stuck in the Go core would keep the interpreter from exiting
    return 0  # pragma: no cover - os._exit above


def _install_signal_handlers(server: IpfsApiServer) -> None:
    def shutdown(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)


def _close_core(core: KuboCore | None, grace: float = 2.0) -> None:
    """Close the node (flushes the datastore), but do not wait on it forever."""
    if core is not None:
        closer = threading.Thread(target=core.cleanup, daemon=True)
        closer.start()
        closer.join(grace)
