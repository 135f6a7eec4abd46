"""EthernityHook: an Airflow connection of type ``ethernity`` -> the protocol client.

The connection holds the network and its endpoints in ``extra`` (edited as fields in the Airflow UI) and the
wallet private key in the password field. The key is handed to the protocol client only; it is never logged.
Or a pool of keys (a JSON list, or one per line): each task instance signs with its own (:mod:`..wallets`).
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_ethernity import wallets
from airflow_provider_ethernity.protocol.errors import EthernityError
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_ethernity.protocol.settings import STORAGE_EXTRA_FIELDS, ClientSettings

if TYPE_CHECKING:  # the client and reader modules load when a task runs, not when a DAG file is parsed
    from airflow_provider_ethernity.protocol.client import EthernityClient, Order, SubmittedTask
    from airflow_provider_ethernity.protocol.events import OrderStatus, RequestStatus
    from airflow_provider_ethernity.protocol.input_file import InputFile
    from airflow_provider_ethernity.protocol.lifecycle import TaskLifecycle
    from airflow_provider_ethernity.protocol.reclaim import ReclaimReport
    from airflow_provider_ethernity.protocol.resources import Resources
    from airflow_provider_ethernity.protocol.results import StoredResult, TaskResult
    from airflow_provider_ethernity.protocol.submission import SubmissionStore, TaskSpec
    from airflow_provider_ethernity.protocol.watcher import OrderEventWatcher

#: Connection fields kept in ``extra`` (the UI may store them as ``extra__ethernity__<name>``).
EXTRA_FIELDS = (
    "network",
    "rpc_url",
    "ipfs_api_url",
    "ipfs_token",
    "trustedzone",
    "securelock",
    "protocol_address",
    "token_address",
    "image_registry_address",
    "chain_id",
    "rpc_timeout",
    "ipfs_timeout",
    "max_input_mb",
    *STORAGE_EXTRA_FIELDS,  # profiles: ipfs_public, ipfs_intake_url, ipfs_gateway_url, result_read_seconds, ...
)


class EthernityHook(BaseHook):
    """Interact with Ethernity Cloud: submit confidential tasks, follow their orders, fetch verified results.

    :param ethernity_conn_id: the Airflow connection of type ``ethernity`` to use.
    """

    conn_name_attr = "ethernity_conn_id"
    default_conn_name = "ethernity_default"
    conn_type = "ethernity"
    hook_name = "Ethernity Cloud"

    def __init__(
        self, ethernity_conn_id: str = default_conn_name, retry: RetryPolicy = DEFAULT_RETRY, wallet: str | None = None
    ) -> None:
        super().__init__()
        self.ethernity_conn_id = ethernity_conn_id
        self.retry = retry
        self.wallet = wallet  # a pool's address or task instance slot; None: the running task's (see wallets)

    # ------------------------------------------------------------------ connection
    @staticmethod
    def _extras(conn: Any) -> dict[str, Any]:
        extra = conn.extra_dejson or {}
        values = {}
        for name in EXTRA_FIELDS:
            value = extra.get(name, extra.get(f"extra__ethernity__{name}"))
            if value not in (None, ""):
                values[name] = value
        return values

    @classmethod
    def settings_from_connection(cls, conn: Any, wallet: str | None = None) -> ClientSettings:
        """Validated client settings of a connection (ConfigurationError names the field); ``wallet``: see key_for."""
        extras = cls._extras(conn)
        network = extras.pop("network", "bloxberg_testnet")
        if "rpc_url" not in extras and conn.host:
            extras["rpc_url"] = conn.host
        return ClientSettings.build(network, private_key=wallets.key_for(conn.password, wallet), **extras)

    @cached_property
    def settings(self) -> ClientSettings:
        """The validated client settings of the connection (raises ConfigurationError with the field name)."""
        return self.settings_from_connection(
            self.get_connection(self.ethernity_conn_id), self.wallet or wallets.current_slot()
        )

    @classmethod
    async def aget_reader_settings(cls, conn_id: str) -> ClientSettings:
        """Settings for key-free reads, fetched without blocking the event loop (for triggers)."""
        return cls.settings_from_connection(await cls.aget_connection(conn_id))

    @classmethod
    async def afor_connection(cls, conn_id: str, wallet: str | None = None) -> EthernityHook:
        """A hook whose connection was fetched without blocking the event loop (for triggers, ``wallet``: their task
        instance's slot or an address): its sync methods then run in a triggerer thread without a new look-up."""
        hook = cls(conn_id, wallet=wallet)
        hook.__dict__["settings"] = cls.settings_from_connection(await cls.aget_connection(conn_id), wallet)
        return hook

    @property
    def wallet_address(self) -> str:
        """The address this hook signs with (with a wallet pool: the chosen wallet's)."""
        return self.client.address

    def get_conn(self) -> EthernityClient:
        """The protocol client for this connection (built once per hook)."""
        return self.client

    @cached_property
    def client(self) -> EthernityClient:
        from airflow_provider_ethernity.protocol.client import EthernityClient

        return EthernityClient(self.settings, retry=self.retry, logger=self.log)

    @classmethod
    async def aget_watcher(cls, conn_id: str, poll_interval: float) -> OrderEventWatcher:
        """The shared chain watcher of the connection's chain in the running event loop (for triggers): key-free
        reads with the connection's ``rpc_timeout``. It polls at least once per block of the network, so it can
        learn the chain's rhythm and see an order (to approve within the node's window) a fraction of a block
        after it is mined, whatever ``poll_interval`` the task asked for."""
        from airflow_provider_ethernity.protocol.async_client import AsyncChainReader
        from airflow_provider_ethernity.protocol.watcher import get_watcher

        settings = await cls.aget_reader_settings(conn_id)
        rpc_url, address = settings.rpc_url, settings.network.protocol_address or ""
        return get_watcher(
            rpc_url,
            address,
            lambda: AsyncChainReader(rpc_url, address, poa=settings.network.poa, timeout=settings.rpc_timeout),
            min(poll_interval, settings.network.block_time),
            confirmations=settings.network.confirmations,
        )

    # ------------------------------------------------------------------ protocol operations
    def submit_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
    ) -> SubmittedTask:
        """Seal and upload code and input, then place the DO request (after every check that can fail)."""
        return self.client.submit_task(code, input_data, resources, trustedzone, node_address, securelock)

    def task_spec(
        self,
        code: str,
        input_data: str | InputFile | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
    ) -> TaskSpec:
        """Validated task parameters (errors name the field) and the fingerprint a retry re-attaches by.
        ``trustedzone`` and ``securelock`` default to the connection's."""
        return self.client.task_spec(code, input_data, resources, trustedzone, node_address, securelock)

    def lifecycle(
        self,
        store: SubmissionStore,
        *,
        max_resubmits: int | None = None,
        order_wait_timeout: float = 1800.0,
        completion_timeout: float | None = None,
        poll_interval: float | None = None,
    ) -> TaskLifecycle:
        """The task lifecycle (submit, order, approval, completion, result, resubmit) over ``store``."""
        from airflow_provider_ethernity.protocol.lifecycle import DEFAULT_MAX_RESUBMITS, TaskLifecycle

        return TaskLifecycle(
            self.client,
            store,
            max_resubmits=DEFAULT_MAX_RESUBMITS if max_resubmits is None else max_resubmits,
            order_wait_timeout=order_wait_timeout,
            completion_timeout=completion_timeout,
            poll_interval=poll_interval,
            logger=self.log,
        )

    def find_order(self, do_request_id: int, from_block: int, order_count_anchor: int | None = None) -> int | None:
        """The order a node placed for the DO request, or None while there is none."""
        return self.client.find_order(do_request_id, from_block, order_count_anchor)

    def approve_order(self, order_id: int) -> str | None:
        """Approve an open order (idempotent: None when it is approved or delegated already)."""
        return self.client.approve_order(order_id)

    def settle_unplaced_request(
        self, do_request_id: int, from_block: int, order_count_anchor: int | None = None
    ) -> int | None:
        """At the order timeout: cancel (None, escrow back) or the order a node booked at the edge."""
        return self.client.settle_unplaced_request(do_request_id, from_block, order_count_anchor)

    def get_order(self, order_id: int) -> Order:
        return self.client.get_order(order_id)

    def get_order_status(self, order_id: int) -> OrderStatus:
        return self.client.get_order_status(order_id)

    def get_request_status(self, do_request_id: int) -> RequestStatus:
        return self.client.get_request_status(do_request_id)

    def is_order_closed(self, order_id: int, from_block: int) -> bool:
        return self.client.is_order_closed(order_id, from_block)

    def cancel_task(self, do_request_id: int) -> str | None:
        """Cancel an unbooked DO request (escrow returned); None when a node already booked it."""
        return self.client.cancel_task(do_request_id)

    def get_result(
        self, order_id: int, challenge: str | None = None, *, challenge_salt: str | None = None,
        max_result_bytes: int | None = None,
    ) -> TaskResult:  # fmt: skip
        """The verified, decrypted result of a closed order (give the submission's ``challenge_salt``); a result
        bigger than ``max_result_bytes`` is refused before it is decrypted."""
        return self.client.get_result(order_id, challenge, max_result_bytes, challenge_salt=challenge_salt)

    def fetch_result(self, reference: dict[str, Any]) -> TaskResult:
        """The verified, decrypted result a ``result_mode="reference"`` task returned the reference of."""
        from airflow_provider_ethernity.protocol.results import matching_reference, reference_ids

        order_id, salt = reference_ids(reference)
        return matching_reference(reference, self.get_result(order_id, challenge_salt=salt))

    def write_result(self, reference: dict[str, Any], destination: Any) -> StoredResult:
        """:meth:`fetch_result`, streamed into ``destination`` (an ``ObjectStoragePath`` or URI): the result is
        decrypted into a private temporary file while it downloads and written to ``destination`` once it is
        verified; it is never held in memory. A failed task writes nothing (``success=False``, ``text``)."""
        from airflow_provider_ethernity.protocol.results import matching_reference, reference_ids

        order_id, salt = reference_ids(reference)
        path = self.result_destination(destination)
        return matching_reference(reference, self.client.write_result(order_id, path, challenge_salt=salt))

    @staticmethod
    def result_destination(destination: Any) -> Any:
        """``destination`` as an ``ObjectStoragePath``, its folder created (object stores have none to make)."""
        from airflow.sdk import ObjectStoragePath

        path = destination if isinstance(destination, ObjectStoragePath) else ObjectStoragePath(str(destination))
        with contextlib.suppress(NotImplementedError, PermissionError):
            path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def read_ipfs(self, cid: str, max_bytes: int | None = None) -> bytes:
        """Content of ``cid`` from the connection's IPFS API (streamed into one buffer; bounded by ``max_bytes``,
        default the connection's ``max_input_mb``)."""

        class _Buffer(bytearray):
            def write(self, chunk: bytes) -> None:
                self.extend(chunk)

        limit = self.settings.max_input_bytes if max_bytes is None else max_bytes
        return bytes(self.client.ipfs.cat_into(cid, _Buffer, max_bytes=limit))

    def stage_input(self, input_path: Any) -> InputFile:
        """The input dataset at ``input_path`` (``ipfs://<CID>`` through the connection's IPFS API, anything else
        an ``ObjectStoragePath``), copied piece by piece into a private temporary file and checked (UTF-8, not
        empty, at most ``max_input_mb``) on the way: it is never held in memory. The sealing step reads the
        file; remove it with ``InputFile.discard()`` once the task was submitted."""
        from airflow_provider_ethernity.protocol.input_file import stage_from_ipfs, stage_input

        uri, limit = str(input_path), self.settings.max_input_bytes
        if uri.startswith("ipfs://"):
            cid = uri.removeprefix("ipfs://").strip("/")
            if not cid:
                raise ValueError(f"input_path={uri!r} names no CID: allowed ipfs://<CID>")
            return stage_from_ipfs(self.client.ipfs, cid, limit, uri)
        from airflow.sdk import ObjectStoragePath

        path = input_path if isinstance(input_path, ObjectStoragePath) else ObjectStoragePath(uri)
        if not path.exists():
            raise FileNotFoundError(f"input_path={uri!r} does not exist")
        with path.open("rb") as fh:
            return stage_input(iter(lambda: fh.read(1 << 20), b""), limit, uri)

    def get_input_cid(self, do_request_id: int) -> str | None:
        """The CID of a DO request's sealed input dataset (from its metadata on chain), None without input."""
        from airflow_provider_ethernity.protocol.metadata import parse_artefact_metadata

        _owner, _image, _code, input_text, _node = self.client._view(
            self.client.protocol.functions._getDORequestMetadata(int(do_request_id))
        )
        return parse_artefact_metadata(input_text).cid or None

    def reclaim(
        self, held_do_requests: set[int] | frozenset[int] = frozenset(), *, dry_run: bool = False
    ) -> ReclaimReport:
        """Cancel this wallet's DO requests no node booked and no live task holds (escrow back); report the
        rest (orders placed and never approved, in progress) with their escrow. See :mod:`.reclaim`."""
        from airflow_provider_ethernity.protocol.reclaim import reclaim

        return reclaim(self.client, held_do_requests, dry_run=dry_run)

    def run_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        securelock: str | None = None,
        *,
        timeout: float | None = None,
        order_wait_timeout: float = 1800.0,
        max_resubmits: int | None = None,
        poll_interval: float | None = None,
    ) -> TaskResult:
        """Run one task synchronously, end to end (see :meth:`EthernityClient.run_task`)."""
        return self.client.run_task(
            code,
            input_data,
            resources,
            trustedzone,
            node_address,
            securelock,
            timeout=timeout,
            order_wait_timeout=order_wait_timeout,
            max_resubmits=max_resubmits,
            poll_interval=poll_interval,
        )

    def get_ipfs_client(self) -> Any:
        """An ``ipfshttpclient.Client`` for the connection's IPFS API (address, token header, timeout), for DAG
        authors' own IPFS work in ``@task`` code: ``add``, ``cat``, ``pin`` of data handled directly.

        The provider's own uploads and result reads use its streaming HTTP client instead (sealed artefacts and
        results can be hundreds of MiB). Close the client (``with hook.get_ipfs_client() as ipfs:``).
        """
        import warnings
        from urllib.parse import urlsplit

        import ipfshttpclient

        settings = self.settings
        if not settings.ipfs_api_url:
            from airflow_provider_ethernity.protocol.errors import ConfigurationError

            raise ConfigurationError("ipfs_api_url is required: the connection names no IPFS API")
        parts = urlsplit(settings.ipfs_api_url)
        scheme = "https" if parts.scheme == "https" else "http"
        host = parts.hostname or "127.0.0.1"
        kind = "ip6" if ":" in host else "ip4" if host.replace(".", "").isdigit() else "dns"
        addr = f"/{kind}/{host}/tcp/{parts.port or (443 if scheme == 'https' else 5001)}/{scheme}"
        headers = {"Authorization": settings.ipfs_token} if settings.ipfs_token else {}
        with warnings.catch_warnings():  # ipfshttpclient's urllib3 "strict" FutureWarning at construction
            warnings.simplefilter("ignore")
            # ``ipfshttpclient.connect()`` refuses daemons newer than 0.8: the client is built directly
            return ipfshttpclient.Client(
                addr, base=parts.path or "/api/v0", headers=headers, timeout=settings.ipfs_timeout
            )

    # ------------------------------------------------------------------ UI
    def test_connection(self) -> tuple[bool, str]:
        """Chain reachable with the expected chain id, contracts deployed, IPFS reachable, wallet funded."""
        try:
            client = self.client
            client.verify_chain()
            block = client.block_number()
            ipfs_version = client.ipfs.version()
            address = client.address
            tokens = client.token_balance() / 10**18
            gas = client.gas_balance() / 10**18
        except EthernityError as exc:
            return False, self._scrub(str(exc))
        except Exception as exc:
            return False, self._scrub(f"{type(exc).__name__}: {exc}")
        network = client.network
        return True, (
            f"Connected to {network.name} (chain {network.chain_id or client.chain_id()}, block {block}); "
            f"contracts found; IPFS {ipfs_version} at {client.settings.ipfs_api_url}; "
            f"wallet {address} holds {tokens:g} {network.token_name} and {gas:g} native coin"
        )

    def _scrub(self, message: str) -> str:
        """Belt and braces: no message leaves with the key or the IPFS token in it."""
        try:
            conn = self.get_connection(self.ethernity_conn_id)
            secrets = [conn.password or "", str(self._extras(conn).get("ipfs_token") or "")]
            secrets += wallets.pool_keys(conn.password)  # every key of a wallet pool
        except Exception:
            return message
        for secret in secrets:
            for form in {secret, secret.removeprefix("0x")}:
                if len(form) >= 8:
                    message = message.replace(form, "***")
        return message
