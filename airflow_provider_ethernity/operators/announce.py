"""What the operator tells Airflow about a delivered result: asset events and OpenLineage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_ethernity.hooks.ethernity import EthernityHook
    from airflow_provider_ethernity.protocol.results import StoredResult, TaskResult
    from airflow_provider_ethernity.protocol.submission import Submission


class ResultAnnouncementMixin:
    """Asset events ``ipfs://<result CID>`` through ``AssetAlias`` outlets; OpenLineage facets on completion."""

    if TYPE_CHECKING:

        @property
        def hook(self) -> EthernityHook: ...

    outlets: Any
    log: Any
    _submission: Submission | None
    _result: tuple[str | None, str | None]

    def _announce_result(self, context: Context, sub: Submission, result: TaskResult | StoredResult) -> None:
        """An asset event ``ipfs://<result CID>`` through every ``AssetAlias`` among the outlets."""
        from airflow.sdk import AssetAlias

        from airflow_provider_ethernity.assets import create_asset

        for outlet in self.outlets or ():
            if isinstance(outlet, AssetAlias):
                extra: dict[str, Any] = {
                    "order_id": result.order_id,
                    "do_request_id": sub.do_request_id,
                    "task_code": result.task_code_name,
                }
                context["outlet_events"][outlet].add(create_asset(result.result_cid), extra=extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (when the provider is installed): the sealed input and result as ``ipfs`` datasets, the
        network, DO request, order and transactions as a run facet."""
        from airflow_provider_ethernity.lineage import TaskLineage

        sub = getattr(self, "_submission", None)
        result_cid, task_code = getattr(self, "_result", (None, None))
        input_cid = None
        if sub is not None and sub.do_request_id is not None:
            try:
                input_cid = self.hook.get_input_cid(sub.do_request_id)
            except Exception as exc:  # lineage must never fail the task
                self.log.warning("OpenLineage: the input's CID could not be read: %s", exc)
        network = self.hook.settings.network
        return TaskLineage(
            network=network.name,
            chain_id=network.chain_id,
            do_request_id=sub.do_request_id if sub else None,
            order_id=sub.order_id if sub else None,
            request_tx=sub.request_tx if sub else None,
            approval_tx=sub.approval_tx if sub else None,
            input_cid=input_cid,
            result_cid=result_cid,
            task_code=task_code,
        ).operator_lineage()
