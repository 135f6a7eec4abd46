"""ethernity_fan_out: dynamic task mapping over inputs, one confidential task each, then a reduce step.

``count`` (a param, default 5) datasets are made, each squared-and-summed on Ethernity Cloud by a mapped
``EthernityRunTaskOperator`` (``.expand``), and a last confidential task adds the partial results up.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, task

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator

SQUARES = """
import json
numbers = json.loads(___etny_data_set___)
___etny_result___(sum(n * n for n in numbers))
"""

TOTAL = """
import json
___etny_result___(sum(json.loads(___etny_data_set___)))
"""

with DAG(
    dag_id="ethernity_fan_out",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    params={"count": Param(5, type="integer", minimum=1, maximum=100, description="how many mapped tasks")},
    tags=["ethernity", "example"],
    doc_md=__doc__,
):

    @task
    def make_inputs(params: dict | None = None) -> list[list[int]]:
        """Dataset i is [i, i+1, i+2]."""
        return [[i, i + 1, i + 2] for i in range(int((params or {}).get("count", 5)))]

    squares = EthernityRunTaskOperator.partial(task_id="squares", code=SQUARES, resources={"taskPrice": 1}).expand(
        input_data=make_inputs()
    )

    EthernityRunTaskOperator(task_id="total", code=TOTAL, input_data=squares.output, resources={"taskPrice": 1})
