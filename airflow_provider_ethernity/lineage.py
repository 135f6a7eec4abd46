"""OpenLineage for an Ethernity task: the sealed input and result as ``ipfs`` datasets, the chain as a run facet.

Imported only when the OpenLineage provider asks an operator for its lineage (it needs ``openlineage-python``,
which ``apache-airflow-providers-openlineage`` brings).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from attrs import define
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet

from airflow_provider_ethernity.assets import SCHEME


@define
class EthernityRunFacet(RunFacet):
    """Where the task ran on chain: network, DO request, order and their transactions, the result's CID."""

    network: str
    chainId: int | None
    doRequestId: int | None
    orderId: int | None
    requestTx: str | None
    approvalTx: str | None
    resultCid: str | None
    taskCode: str | None

    _additional_skip_redact = ["network", "requestTx", "approvalTx", "resultCid", "taskCode"]


@dataclass(frozen=True)
class TaskLineage:
    """What one run of the operator touched (public ids only)."""

    network: str
    chain_id: int | None
    do_request_id: int | None
    order_id: int | None
    request_tx: str | None
    approval_tx: str | None
    input_cid: str | None
    result_cid: str | None
    task_code: str | None

    def operator_lineage(self) -> Any:
        from airflow.providers.openlineage.extractors import OperatorLineage

        return OperatorLineage(
            inputs=[Dataset(namespace=SCHEME, name=self.input_cid)] if self.input_cid else [],
            outputs=[Dataset(namespace=SCHEME, name=self.result_cid)] if self.result_cid else [],
            run_facets={
                "ethernity": EthernityRunFacet(
                    network=self.network,
                    chainId=self.chain_id,
                    doRequestId=self.do_request_id,
                    orderId=self.order_id,
                    requestTx=self.request_tx,
                    approvalTx=self.approval_tx,
                    resultCid=self.result_cid,
                    taskCode=self.task_code,
                )
            },
        )
