"""Extra links to the network's block explorer (none for the devnet, which has no explorer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class _ExplorerLink(BaseOperatorLink):
    """The operator pushes the full URL to XCom under :attr:`xcom_key`; the UI reads it from there."""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(key=self.xcom_key, ti_key=ti_key) or ""

    @staticmethod
    def url(explorer_url: str | None, path: str) -> str:
        """The link's target: empty (no button target) when the network has no explorer."""
        return f"{explorer_url.rstrip('/')}/{path.lstrip('/')}" if explorer_url else ""

    @classmethod
    def persist(cls, context: Any, explorer_url: str | None, path: str) -> None:
        """Push the link for this task instance (the UI reads it from XCom)."""
        context["ti"].xcom_push(key=cls().xcom_key, value=cls.url(explorer_url, path))


class EthernityRequestLink(_ExplorerLink):
    """The transaction that placed the DO request (``_addDORequest``)."""

    name = "Ethernity DO request"


class EthernityOrderLink(_ExplorerLink):
    """The transaction that approved the order (or the protocol contract, when the order was pinned)."""

    name = "Ethernity order"
