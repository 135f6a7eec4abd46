"""anvil from the pinned npm package, installed on first use into a per-user cache.

The meta package ``@foundry-rs/anvil`` lists one optional dependency per platform
(``@foundry-rs/anvil-<os>-<arch>``, holding ``bin/anvil``); npm installs the one that fits this machine from
the npm registry. Its postinstall script (which npm 11 skips unless allowed) only downloads the same
platform package from the same registry when the optional dependency is missing, so nothing is fetched
from outside the npm registry. The binary is run directly (not through the package's node wrapper), so the
devnet's recorded pid is anvil's own.

The cache is ``$ETHERNITY_DEVNET_CACHE``, else ``$XDG_CACHE_HOME/ethernity-devnet``, else
``~/.cache/ethernity-devnet``; each anvil version gets its own folder in it (``anvil-1.7.1/``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from airflow_provider_ethernity.devnet.errors import DevnetError, ToolNotFoundError

ANVIL_VERSION = "1.7.1"
ANVIL_PACKAGE = "@foundry-rs/anvil"
#: (sys.platform, platform.machine()) -> the npm platform package (the same names as the meta package's).
PLATFORM_PACKAGES = {
    ("linux", "x86_64"): "@foundry-rs/anvil-linux-amd64",
    ("linux", "amd64"): "@foundry-rs/anvil-linux-amd64",
    ("linux", "aarch64"): "@foundry-rs/anvil-linux-arm64",
    ("linux", "arm64"): "@foundry-rs/anvil-linux-arm64",
    ("darwin", "x86_64"): "@foundry-rs/anvil-darwin-amd64",
    ("darwin", "arm64"): "@foundry-rs/anvil-darwin-arm64",
    ("win32", "AMD64"): "@foundry-rs/anvil-win32-amd64",
}
NPM_TIMEOUT = 900.0


def binary_name() -> str:
    return "anvil.exe" if sys.platform == "win32" else "anvil"


def platform_package() -> str | None:
    """The npm package holding this machine's anvil binary (None on a platform Foundry does not ship)."""
    return PLATFORM_PACKAGES.get((sys.platform, platform.machine()))


def cache_dir() -> Path:
    """The per-user cache folder of this anvil version (see the module docstring)."""
    if os.environ.get("ETHERNITY_DEVNET_CACHE"):
        base = Path(os.environ["ETHERNITY_DEVNET_CACHE"])
    elif os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ["XDG_CACHE_HOME"]) / "ethernity-devnet"
    else:
        base = Path.home() / ".cache" / "ethernity-devnet"
    return base / f"anvil-{ANVIL_VERSION}"


def cache_node_modules() -> Path:
    return cache_dir() / "node_modules"


def anvil_in(node_modules: Path) -> Path | None:
    """anvil inside a ``node_modules``: the platform package's binary, or the meta package's fallback copy."""
    candidates = [node_modules / ANVIL_PACKAGE / binary_name()]  # where the postinstall fallback puts it
    package = platform_package()
    if package:
        candidates.insert(0, node_modules / package / "bin" / binary_name())
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def which_npm() -> str:
    """The npm executable, or a ToolNotFoundError saying what to install."""
    npm = shutil.which("npm")
    if npm is None:
        raise ToolNotFoundError(
            "anvil is not installed and npm was not found to install it: install Node.js 20 (with npm), "
            f"or set ETHERNITY_ANVIL to an anvil {ANVIL_VERSION} binary"
        )
    return npm


def install_anvil(progress: TextIO | None = None) -> Path:
    """``npm install --prefix <cache> @foundry-rs/anvil@<version>``; returns the binary.

    Prints one progress line to ``progress`` (stderr by default). Safe against a concurrent install: the
    second waits for the first (a lock file in the cache) and then finds the binary.
    """
    out = progress or sys.stderr
    if platform_package() is None:
        raise ToolNotFoundError(
            f"Foundry ships no anvil for {sys.platform}/{platform.machine()}: set ETHERNITY_ANVIL to an anvil binary"
        )
    target = cache_dir()
    spec = f"{ANVIL_PACKAGE}@{ANVIL_VERSION}"
    npm = which_npm()
    target.mkdir(parents=True, exist_ok=True)
    with _install_lock(target / ".install.lock"):
        found = anvil_in(target / "node_modules")
        if found is not None:  # a concurrent install finished while we waited
            return found
        print(f"anvil not found: installing {spec} with npm into {target} (once per user) ...", file=out, flush=True)
        started = time.monotonic()
        log_path = target / "npm-install.log"
        command = [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund", "--loglevel=warn", spec]
        with open(log_path, "wb") as log:
            try:
                done = subprocess.run(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=NPM_TIMEOUT
                )
            except subprocess.TimeoutExpired:
                raise DevnetError(f"npm install {spec} took over {NPM_TIMEOUT:g} s; see {log_path}") from None
        if done.returncode != 0:
            raise DevnetError(f"npm install {spec} failed (exit {done.returncode}); see {log_path}")
        found = anvil_in(target / "node_modules")
        if found is None:
            raise DevnetError(f"npm installed {spec} but no anvil binary for this platform is in it; see {log_path}")
        print(f"anvil {ANVIL_VERSION} installed in {time.monotonic() - started:.0f} s: {found}", file=out, flush=True)
        return found


@contextlib.contextmanager
def _install_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (POSIX ``flock``; no lock where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
