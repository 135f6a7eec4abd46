"""Where the devnet's pinned npm tools live (anvil, solc-js).

They come from the project's ``package.json`` (``npm ci`` at the repository root). Set
``ETHERNITY_NODE_MODULES`` to use another ``node_modules`` directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64"
SOLC_PACKAGE = "solc"


class ToolNotFoundError(RuntimeError):
    """A pinned devnet tool is not installed."""


def node_modules_candidates() -> list[Path]:
    here = Path(__file__).resolve()
    found = []
    if os.environ.get("ETHERNITY_NODE_MODULES"):
        found.append(Path(os.environ["ETHERNITY_NODE_MODULES"]))
    found += [parent / "node_modules" for parent in here.parents]
    found.append(Path.cwd() / "node_modules")
    return found


def _find_in_packages(relative: str) -> Path | None:
    for modules in node_modules_candidates():
        candidate = modules / relative
        if candidate.exists():
            return candidate
    return None


def find_anvil() -> Path:
    """The anvil binary of the pinned npm package (or ``ETHERNITY_ANVIL``, or anvil on PATH)."""
    if os.environ.get("ETHERNITY_ANVIL"):
        return Path(os.environ["ETHERNITY_ANVIL"])
    found = _find_in_packages(f"{ANVIL_PACKAGE}/bin/anvil")
    if found is None and shutil.which("anvil"):
        found = Path(shutil.which("anvil"))  # type: ignore[arg-type]
    if found is None:
        raise ToolNotFoundError(
            f"anvil not found: run `npm ci` in the repository root (package {ANVIL_PACKAGE}) "
            "or set ETHERNITY_ANVIL / ETHERNITY_NODE_MODULES"
        )
    return found


def find_solcjs() -> Path:
    found = _find_in_packages(f"{SOLC_PACKAGE}/solc.js")
    if found is None:
        raise ToolNotFoundError(f"solc-js not found: run `npm ci` in the repository root (package {SOLC_PACKAGE})")
    return found
