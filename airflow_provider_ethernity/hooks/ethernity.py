"""EthernityHook: an Airflow connection of type ``ethernity`` -> the protocol client.

The connection holds the network and its endpoints in ``extra`` (edited as fields in the Airflow UI) and the
wallet private key in the password field. The key is handed to the protocol client only; it is never logged.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_provider_ethernity.protocol.errors import EthernityError
from airflow_provider_ethernity.protocol.retry import DEFAULT_RETRY, RetryPolicy
from airflow_provider_ethernity.protocol.settings import ClientSettings

if TYPE_CHECKING:  # the client and reader modules load when a task runs, not when a DAG file is parsed
    from airflow_provider_ethernity.protocol.async_client import AsyncChainReader
    from airflow_provider_ethernity.protocol.client import EthernityClient, Order, SubmittedTask
    from airflow_provider_ethernity.protocol.events import OrderStatus
    from airflow_provider_ethernity.protocol.resources import Resources
    from airflow_provider_ethernity.protocol.results import TaskResult

#: Connection fields kept in ``extra`` (the UI may store them as ``extra__ethernity__<name>``).
EXTRA_FIELDS = (
    "network",
    "rpc_url",
    "ipfs_api_url",
    "ipfs_token",
    "trustedzone",
    "protocol_address",
    "token_address",
    "image_registry_address",
    "chain_id",
    "rpc_timeout",
    "ipfs_timeout",
    "max_input_mb",
)


class EthernityHook(BaseHook):
    """Interact with Ethernity Cloud: submit confidential tasks, follow their orders, fetch verified results.

    :param ethernity_conn_id: the Airflow connection of type ``ethernity`` to use.
    """

    conn_name_attr = "ethernity_conn_id"
    default_conn_name = "ethernity_default"
    conn_type = "ethernity"
    hook_name = "Ethernity Cloud"

    def __init__(self, ethernity_conn_id: str = default_conn_name, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        super().__init__()
        self.ethernity_conn_id = ethernity_conn_id
        self.retry = retry

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
    def settings_from_connection(cls, conn: Any) -> ClientSettings:
        """Validated client settings of a connection (raises ConfigurationError naming the field)."""
        extras = cls._extras(conn)
        network = extras.pop("network", "bloxberg_testnet")
        if "rpc_url" not in extras and conn.host:
            extras["rpc_url"] = conn.host
        return ClientSettings.build(network, private_key=conn.password, **extras)

    @cached_property
    def settings(self) -> ClientSettings:
        """The validated client settings of the connection (raises ConfigurationError with the field name)."""
        return self.settings_from_connection(self.get_connection(self.ethernity_conn_id))

    @classmethod
    async def aget_reader_settings(cls, conn_id: str) -> ClientSettings:
        """Settings for key-free reads, fetched without blocking the event loop (for triggers)."""
        return cls.settings_from_connection(await cls.aget_connection(conn_id))

    def get_conn(self) -> EthernityClient:
        """The protocol client for this connection (built once per hook)."""
        return self.client

    @cached_property
    def client(self) -> EthernityClient:
        from airflow_provider_ethernity.protocol.client import EthernityClient

        return EthernityClient(self.settings, retry=self.retry, logger=self.log)

    def get_async_reader(self) -> AsyncChainReader:
        """A key-free async reader of the connection's chain, for triggers."""
        from airflow_provider_ethernity.protocol.async_client import AsyncChainReader

        s = self.settings
        return AsyncChainReader(s.rpc_url, s.network.protocol_address or "", poa=s.network.poa, retry=self.retry)

    # ------------------------------------------------------------------ protocol operations
    def submit_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
    ) -> SubmittedTask:
        """Seal and upload code and input, then place the DO request (after every check that can fail)."""
        return self.client.submit_task(code, input_data, resources, trustedzone, node_address)

    def find_order(self, do_request_id: int, from_block: int, order_count_anchor: int | None = None) -> int | None:
        """The order a node placed for the DO request, or None while there is none."""
        return self.client.find_order(do_request_id, from_block, order_count_anchor)

    def approve_order(self, order_id: int) -> str:
        return self.client.approve_order(order_id)

    def get_order(self, order_id: int) -> Order:
        return self.client.get_order(order_id)

    def get_order_status(self, order_id: int) -> OrderStatus:
        return self.client.get_order_status(order_id)

    def cancel_task(self, do_request_id: int) -> str | None:
        """Cancel an unbooked DO request (escrow returned); None when a node already booked it."""
        return self.client.cancel_task(do_request_id)

    def get_result(self, order_id: int, challenge: str) -> TaskResult:
        """The verified, decrypted result of a closed order."""
        return self.client.get_result(order_id, challenge)

    def run_task(
        self,
        code: str,
        input_data: str | None = None,
        resources: Resources | dict[str, Any] | None = None,
        trustedzone: str | None = None,
        node_address: str | None = None,
        *,
        timeout: float | None = None,
        order_wait_timeout: float = 1800.0,
        max_resubmits: int = 2,
        poll_interval: float | None = None,
    ) -> TaskResult:
        """Run one task synchronously, end to end (see :meth:`EthernityClient.run_task`)."""
        return self.client.run_task(
            code,
            input_data,
            resources,
            trustedzone,
            node_address,
            timeout=timeout,
            order_wait_timeout=order_wait_timeout,
            max_resubmits=max_resubmits,
            poll_interval=poll_interval,
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
        except Exception:
            return message
        for secret in secrets:
            for form in {secret, secret.removeprefix("0x")}:
                if len(form) >= 8:
                    message = message.replace(form, "***")
        return message
