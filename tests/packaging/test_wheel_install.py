"""The wheel as a pip user gets it: built from the sources, installed with ``[devnet]`` into a fresh venv
outside the checkout, and ``ethernity-devnet up``, ``hello``, ``status``, ``down`` run from an empty folder.

The user's first hour, for real: no clone, no ``npm ci``, no ``ETHERNITY_ANVIL``, no ``node_modules``
reachable from the empty folder, no anvil on ``PATH``. Each run gets its own empty anvil cache
(``ETHERNITY_DEVNET_CACHE``), so the install-on-first-use path (``npm install @foundry-rs/anvil@1.7.1``
into the cache) runs every time; npm's own download cache keeps that to seconds. Installing the wheel's
dependencies into the fresh venv takes about a minute with pip's configured wheel sources (measured here:
65 s), so these tests are slow-ish; they need the PyPI and npm registries (or their local mirrors/caches).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet.process import ProcessIdentity

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(1800)]
REPO = Path(__file__).resolve().parents[2]
#: What the wheel is built from: copied out of the checkout so the build leaves nothing in it.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "airflow_provider_ethernity")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, src / name)
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(src)], timeout=600)
    (built,) = dist.glob("airflow_provider_ethernity-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv (no system site-packages) outside the checkout, with ``<wheel>[devnet]`` installed."""
    root = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", str(root)], timeout=300)
    run([str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[devnet]"], timeout=1200)
    return root


def run(command: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def user_env(venv: Path, home: Path) -> dict[str, str]:
    """A pip user's environment: the venv's bin and the system's tools (node, npm) on PATH, but no anvil, no
    checkout on PYTHONPATH, no devnet settings; HOME, AIRFLOW_HOME and the anvil cache are the test's own."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "ETHERNITY_", "AIRFLOW_", "AIRFLOW__", "XDG_CACHE_HOME")
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and not _has_anvil(entry)]
    path = [entry for entry in path if Path(entry).resolve() != (REPO / ".venv" / "bin").resolve()]
    npm_dir = str(Path(shutil.which("npm") or "/usr/bin/npm").parent)
    env.update(
        PATH=os.pathsep.join([str(venv / "bin"), *path, npm_dir]),
        HOME=str(home),
        NPM_CONFIG_CACHE=os.environ.get("NPM_CONFIG_CACHE", str(Path.home() / ".npm")),  # npm's download cache
        ETHERNITY_DEVNET_CACHE=str(home / "anvil-cache"),
        ETHERNITY_DEVNET_HOME=str(home / "devnet"),
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return env


def _has_anvil(entry: str) -> bool:
    return (Path(entry) / "anvil").exists()


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "airflow_provider_ethernity/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "airflow_provider_ethernity/devnet/contracts/build/EthernityProtocol.json" in names
    assert not any("example_dags" in n for n in names)  # they live at the repository root, not in the package
    for line in (
        "License-Expression: Apache-2.0",
        "Classifier: Framework :: Apache Airflow",
        "Classifier: Framework :: Apache Airflow :: Provider",
        "Classifier: Programming Language :: Python :: 3.11",
        "Project-URL: Changelog, https://github.com/ethernity-cloud/airflow-provider-ethernity/blob/main/CHANGELOG.md",
    ):
        assert line in metadata.splitlines(), line


@pytest.fixture
def user(venv: Path, tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """The user's environment and an empty working folder; the devnet is stopped at the end whatever happened."""
    home = tmp_path / "home"
    empty = tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    env = user_env(venv, home)
    yield env, empty
    state = home / "devnet" / "devnet.json"
    if state.exists():
        subprocess.run([str(venv / "bin" / "ethernity-devnet"), "down"], env=env, cwd=empty, timeout=120, check=False)


def test_pip_user_runs_the_devnet_from_an_empty_folder(venv: Path, user: tuple[dict[str, str], Path]) -> None:
    env, empty = user
    devnet = str(venv / "bin" / "ethernity-devnet")
    where = run([str(venv / "bin" / "python"), "-c", "import airflow_provider_ethernity as p; print(p.__file__)"],
                timeout=60, env=env, cwd=empty)  # fmt: skip
    assert where.stdout.strip().startswith(str(venv)), "the venv must import the installed wheel, not the checkout"

    up = run([devnet, "up", "--rpc-port", "0", "--ipfs-port", "0"], timeout=900, env=env, cwd=empty)
    assert "installing @foundry-rs/anvil@1.7.1 with npm" in up.stderr  # the first-use install really ran
    assert "Ethernity devnet is up" in up.stdout and "export AIRFLOW_CONN_ETHERNITY_DEFAULT=" in up.stdout
    assert "Traceback" not in up.stderr
    state = json.loads((Path(env["ETHERNITY_DEVNET_HOME"]) / "devnet.json").read_text())
    assert state["processes"]["anvil"]["command"].startswith(env["ETHERNITY_DEVNET_CACHE"])
    identities = [ProcessIdentity.from_dict(record) for record in state["processes"].values()]
    assert all(identity.is_running() for identity in identities)
    assert list(empty.iterdir()) == [], "the devnet writes into its workdir, not into the current folder"

    again = run([devnet, "up"], timeout=120, env=env, cwd=empty)
    assert "already running" in again.stdout and state["rpc_url"] in again.stdout

    hello = run([devnet, "hello"], timeout=600, env=env, cwd=empty)
    assert "-> Hello, Python World!" in hello.stdout

    status = run([devnet, "status"], timeout=120, env=env, cwd=empty)
    assert status.stdout.count(" running ") == 3 and "anvil.log" in status.stdout

    down = run([devnet, "down"], timeout=120, env=env, cwd=empty)
    assert down.stdout.count(": stopped") == 3, down.stdout
    assert not any(identity.is_running() for identity in identities)
    assert not _processes_mentioning(Path(env["HOME"])), "a devnet process outlived `down`"


def _processes_mentioning(path: Path) -> list[str]:
    """Command lines of running processes that mention ``path`` (this test's folders)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline and ProcessIdentity.of(int(proc.name)) is not None:
            found.append(cmdline)
    return found
