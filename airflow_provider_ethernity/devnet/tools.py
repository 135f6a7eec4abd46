"""Where the devnet's pinned npm tools live: anvil (to run the chain) and solc-js (only to compile contracts).

anvil is looked up in this order:

1. ``ETHERNITY_ANVIL``: the path of an anvil binary;
2. ``anvil`` on ``PATH``;
3. a ``node_modules`` directory: ``ETHERNITY_NODE_MODULES``, the repository root (from a checkout, after
   ``npm ci``), the current directory;
4. the per-user cache (see :mod:`~airflow_provider_ethernity.devnet.anvil_install`), where it is installed
   from the pinned npm package on first use when none of the above has it.

solc-js comes from the repository's ``package.json`` only: the compiled contracts are committed, so starting
a devnet from the wheel never needs it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from airflow_provider_ethernity.devnet import anvil_install
from airflow_provider_ethernity.devnet.errors import ToolNotFoundError

SOLC_PACKAGE = "solc"
#: In a checkout this file is ``<repo>/airflow_provider_ethernity/devnet/tools.py``.
_REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ToolNotFoundError", "find_anvil", "find_solcjs", "node_modules_candidates"]


def node_modules_candidates() -> list[Path]:
    """``ETHERNITY_NODE_MODULES``, the repository's ``node_modules`` (from a checkout), the current directory's."""
    found = []
    if os.environ.get("ETHERNITY_NODE_MODULES"):
        found.append(Path(os.environ["ETHERNITY_NODE_MODULES"]))
    if (_REPO_ROOT / "pyproject.toml").is_file() and (_REPO_ROOT / "airflow_provider_ethernity").is_dir():
        found.append(_REPO_ROOT / "node_modules")
    found.append(Path.cwd() / "node_modules")
    return found


def _find_in_packages(relative: str) -> Path | None:
    for modules in node_modules_candidates():
        candidate = modules / relative
        if candidate.exists():
            return candidate
    return None


def find_anvil(install: bool = True) -> Path:
    """The anvil binary (see the module docstring for the order); installs it on first use if ``install``."""
    configured = os.environ.get("ETHERNITY_ANVIL")
    if configured:
        if not os.access(configured, os.X_OK):
            raise ToolNotFoundError(f"ETHERNITY_ANVIL={configured} is not an executable file")
        return Path(configured)
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    for modules in [*node_modules_candidates(), anvil_install.cache_node_modules()]:
        found = anvil_install.anvil_in(modules)
        if found is not None:
            return found
    if not install:
        raise ToolNotFoundError(
            "anvil not found: set ETHERNITY_ANVIL, put anvil on PATH, or set ETHERNITY_NODE_MODULES "
            f"(it is installed into {anvil_install.cache_dir()} on first use)"
        )
    return anvil_install.install_anvil()


def find_solcjs() -> Path:
    found = _find_in_packages(f"{SOLC_PACKAGE}/solc.js")
    if found is None:
        raise ToolNotFoundError(f"solc-js not found: run `npm ci` in the repository root (package {SOLC_PACKAGE})")
    return found
