"""Loopback ports: the devnet's stable defaults, free ports, and waiting for a listener."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

#: ``ethernity-devnet up`` listens here unless told otherwise, so a saved Airflow connection survives restarts.
DEFAULT_RPC_PORT = 8545
DEFAULT_IPFS_PORT = 5001


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True if a server could listen on 127.0.0.1:``port`` now (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_port_free(port: int, timeout: float) -> bool:
    """True once 127.0.0.1:``port`` can be listened on; False after ``timeout`` seconds.

    Right after a server on the port was stopped, the kernel may still hold its closing connections for a
    moment (they keep the port when the server did not set SO_REUSEADDR)."""
    deadline = time.monotonic() + timeout
    while not port_is_free(port):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_listening(port: int, timeout: float, alive: Callable[[], bool] = lambda: True) -> bool:
    """True once something accepts connections on ``port``; False on timeout or when ``alive()`` turns false."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(port):
            return True
        if not alive():
            return False
        time.sleep(0.05)
    return False
