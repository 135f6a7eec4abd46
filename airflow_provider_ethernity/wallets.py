"""A pool of wallets in one ``ethernity`` connection, with a deterministic wallet per task instance.

The connection's password holds one private key (as always) or several: a JSON list of keys, or one key per
line (commas also separate). Each task instance signs with ``keys[sha256(dag_id/run_id/task_id/map_index) % n]``:
the same wallet for every try of the task, in the worker that submits and in the triggerer that approves its
order, on whichever machine runs them, with no coordination. Tasks that share a wallet still coordinate
through the transaction layer (``flock`` on one machine; nonce look-up by hash across machines), but with n
wallets two machines send from the same wallet at the same moment about n times less often.

Only keys and addresses live here; nothing is logged. Keys stay in the password field (encrypted at rest).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

#: ``wallet=`` value that asks for the pool's first key (key-free reads, the CLI, tests)
FIRST = "first"


def parse_keys(password: str | None) -> list[str]:
    """The private keys in a connection password: one key, a JSON list, or keys separated by newlines/commas."""
    text = (password or "").strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            keys = json.loads(text)
        except ValueError:
            raise ValueError("the connection password looks like a JSON list of keys but is not valid JSON") from None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("the connection password's JSON must be a list of private keys (strings)")
    else:
        keys = text.replace(",", "\n").splitlines()
    keys = [k.strip() for k in keys if k.strip()]
    if len({k.lower().removeprefix("0x") for k in keys}) != len(keys):
        raise ValueError("the connection password lists the same private key twice")
    return keys


def mask(keys: list[str]) -> None:
    """Ask Airflow's secrets masker to hide every key of a pool (it masks the password as one string)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    for key in keys:
        mask_secret(key)


def slot(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """The identity a task instance's wallet is chosen by (the same for all its tries)."""
    return f"{dag_id}/{run_id}/{task_id}/{-1 if map_index is None else int(map_index)}"


def slot_of(ti: Any) -> str | None:
    """The slot of a task instance-like object (a runtime TI, a triggerer's TI), or None."""
    try:
        return slot(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))
    except AttributeError:
        return None


def current_slot() -> str | None:
    """The slot of the task instance running in this process (a worker's task), or None outside a task."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # not inside a running task
        return None
    return slot_of(context.get("ti"))


def index_for(slot_: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(slot_.encode()).digest()[:8], "big") % n


def address_of(key: str) -> str:
    from eth_account import Account

    return str(Account.from_key(key).address)


def choose_key(keys: list[str], wallet: str | None) -> str | None:
    """The key to sign with: the only one; the one with address ``wallet`` (``0x`` + 40 hex); the pool's first
    (``wallet`` is None outside a task, or :data:`FIRST`); or the one the slot ``wallet`` hashes to."""
    if not keys:
        return None
    if len(keys) == 1 or wallet in (None, "", FIRST):
        return keys[0]
    if wallet.startswith("0x") and len(wallet) == 42:
        for key in keys:
            if address_of(key).lower() == wallet.lower():
                return key
        raise ValueError(f"wallet {wallet} is not in the connection's wallet pool")
    return keys[index_for(wallet, len(keys))]


def is_pool(password: str | None) -> bool:
    """Whether a connection password holds a pool (a JSON list, or several keys) rather than one key."""
    text = (password or "").strip()
    return bool(text) and ("\n" in text or "," in text or text.startswith("["))


def pool_keys(password: str | None) -> list[str]:
    """Every key of a pool in the password ([] for one key or a malformed pool): what must never be shown."""
    try:
        return parse_keys(password) if is_pool(password) else []
    except ValueError:
        return []


def key_for(password: str | None, wallet: str | None) -> str | None:
    """The private key a hook signs with: the password itself, or the pool's key for ``wallet`` (every key of
    the pool masked in Airflow's logs); ConfigurationError (naming the field) for a malformed pool."""
    if not is_pool(password):
        return password
    try:
        keys = parse_keys(password)
        mask(keys)
        return choose_key(keys, wallet)
    except ValueError as exc:
        from airflow_provider_ethernity.protocol.errors import ConfigurationError

        raise ConfigurationError(f"private key (connection password): {exc}") from None
