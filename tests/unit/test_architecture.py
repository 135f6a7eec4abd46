"""The import rules of docs/architecture.md, enforced on the source (no import is executed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_ethernity"
AIRFLOW_FACE = ("hooks", "operators", "sensors", "triggers", "links")
#: Protocol modules that hold the client and its connections: only the hook (and the devnet) use them.
CLIENT_LAYER = (
    "client",
    "connection",
    "orders",
    "do_requests",
    "results_fetch",
    "async_client",
    "transactions",
    "watcher",
)
MAX_MODULE_LINES = 400


def _modules(*rooms: str) -> list[Path]:
    files = [p for room in rooms for p in sorted((PACKAGE / room).rglob("*.py"))]
    assert files, rooms
    return files


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at the top or inside a function, under TYPE_CHECKING or not."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


@pytest.mark.parametrize("path", _modules("protocol"), ids=_rel)
def test_the_protocol_core_never_imports_airflow_or_the_airflow_face(path: Path) -> None:
    face = tuple(f"airflow_provider_ethernity.{room}" for room in AIRFLOW_FACE)
    bad = [name for name in _imports(path) if _under(name, "airflow", *face)]
    assert not bad, f"{_rel(path)} imports {bad}: the protocol core stays free of Airflow"


@pytest.mark.parametrize("path", _modules("operators", "sensors", "triggers", "links"), ids=_rel)
def test_operators_sensors_triggers_and_links_talk_only_to_the_hook(path: Path) -> None:
    layer = tuple(f"airflow_provider_ethernity.protocol.{name}" for name in CLIENT_LAYER)
    bad = [name for name in _imports(path) if _under(name, "web3", "eth_account", "eth_abi", *layer)]
    assert not bad, f"{_rel(path)} imports {bad}: reach the chain through EthernityHook"
    source = path.read_text()
    assert "hook.client" not in source and ".client." not in source, f"{_rel(path)} reaches past the hook"
    tree = ast.parse(source, str(path))
    uses = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr in ("client", "get_conn")]
    assert not uses, f"{_rel(path)} uses the hook's client on lines {uses}: add a hook method instead"


@pytest.mark.parametrize("path", [p for p in _modules("devnet") if p.name != "cli.py"], ids=_rel)
def test_the_devnet_uses_only_the_protocol_core(path: Path) -> None:
    """The devnet runs without Airflow (its ``cli.py demo`` command alone goes through the hook, on purpose: it
    is the user's smoke test of the provider)."""
    face = tuple(f"airflow_provider_ethernity.{room}" for room in AIRFLOW_FACE)
    bad = [name for name in _imports(path) if _under(name, "airflow", *face)]
    assert not bad, f"{_rel(path)} imports {bad}: the devnet uses the protocol core only"


@pytest.mark.parametrize("path", _modules(""), ids=_rel)
def test_no_module_is_over_the_size_limit(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{_rel(path)} has {lines} lines (limit {MAX_MODULE_LINES}): split it"
