"""Running ``ethernity-devnet`` as a user does (a separate process) from the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def devnet_cli(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``ethernity-devnet --workdir <workdir> <args>`` with this interpreter; never raises on its exit code."""
    command = [sys.executable, "-m", "airflow_provider_ethernity.devnet.cli", "--workdir", str(workdir), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}, check=False
    )


def stderr_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    """stderr without the INFO log lines the CLI prints while it works."""
    return [line for line in done.stderr.splitlines() if not line.startswith("INFO ")]
