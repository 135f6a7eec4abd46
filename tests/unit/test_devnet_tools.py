"""Where anvil comes from (ETHERNITY_ANVIL, PATH, node_modules, the per-user cache) and what the user reads
when it cannot be had. The real npm install is exercised by tests/packaging."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from airflow_provider_ethernity.devnet import anvil_install
from airflow_provider_ethernity.devnet.tools import ToolNotFoundError, find_anvil


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ETHERNITY_* settings, an empty PATH and cwd, the anvil cache in tmp_path."""
    for name in ("ETHERNITY_ANVIL", "ETHERNITY_NODE_MODULES", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("ETHERNITY_DEVNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(empty)
    return tmp_path


def test_etherity_anvil_wins(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = executable(clean_env / "bin" / "my-anvil")
    monkeypatch.setenv("PATH", str(executable(clean_env / "onpath" / "anvil").parent))
    monkeypatch.setenv("ETHERNITY_ANVIL", str(mine))
    assert find_anvil() == mine


def test_etherity_anvil_not_executable_is_one_clear_error(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETHERNITY_ANVIL", str(clean_env / "missing"))
    with pytest.raises(ToolNotFoundError, match=r"^ETHERNITY_ANVIL=.*missing is not an executable file$"):
        find_anvil()


def test_path_comes_before_node_modules(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = executable(clean_env / "onpath" / "anvil")
    modules = clean_env / "modules"
    executable(modules / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil")
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv("ETHERNITY_NODE_MODULES", str(modules))
    assert find_anvil() == on_path


def test_node_modules_of_etherity_node_modules(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = anvil_install.platform_package()
    assert package is not None
    binary = executable(clean_env / "modules" / package / "bin" / "anvil")
    monkeypatch.setenv("ETHERNITY_NODE_MODULES", str(clean_env / "modules"))
    assert find_anvil(install=False) == binary


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ETHERNITY_DEVNET_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert anvil_install.cache_dir() == tmp_path / "explicit" / "anvil-1.7.1"
    monkeypatch.delenv("ETHERNITY_DEVNET_CACHE")
    assert anvil_install.cache_dir() == tmp_path / "xdg" / "ethernity-devnet" / "anvil-1.7.1"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert anvil_install.cache_dir() == tmp_path / "home" / ".cache" / "ethernity-devnet" / "anvil-1.7.1"


def test_anvil_in_the_cache_is_found(clean_env: Path) -> None:
    package = anvil_install.platform_package()
    assert package is not None
    binary = executable(anvil_install.cache_node_modules() / package / "bin" / "anvil")
    assert anvil_install.anvil_in(anvil_install.cache_node_modules()) == binary


def test_without_npm_the_install_says_what_to_do(clean_env: Path) -> None:
    with pytest.raises(ToolNotFoundError, match=r"install Node\.js 20 \(with npm\), or set ETHERNITY_ANVIL"):
        anvil_install.install_anvil()


def test_platform_packages_are_the_meta_packages_optional_dependencies() -> None:
    """The names the meta package @foundry-rs/anvil@1.7.1 lists (npm view ... optionalDependencies)."""
    assert set(anvil_install.PLATFORM_PACKAGES.values()) == {
        "@foundry-rs/anvil-linux-amd64",
        "@foundry-rs/anvil-linux-arm64",
        "@foundry-rs/anvil-darwin-amd64",
        "@foundry-rs/anvil-darwin-arm64",
        "@foundry-rs/anvil-win32-amd64",
    }
