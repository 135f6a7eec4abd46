"""ethernity_pipeline: three confidential steps that depend on each other.

1. ``stats`` (code from ``code/stats.py``, a templated file) summarizes a dataset.
2. ``scale`` takes step 1's result as its input; it is submitted with ``wait_for_completion=False`` and its
   result is collected by ``scale_result``, an ``EthernityTaskSensor`` that waits in the triggerer.
3. ``report`` combines the results of steps 1 and 2.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator
from airflow_provider_ethernity.sensors.ethernity import EthernityTaskSensor

SCALE = """
import json
stats = json.loads(___etny_data_set___)
___etny_result___({"scaled_sum": stats["sum"] * 10, "scaled_max": stats["max"] * 10})
"""

REPORT = """
import json
data = json.loads(___etny_data_set___)
stats, scaled = data["stats"], data["scaled"]
summary = f"{stats['label']}: sum {stats['sum']} -> {scaled['scaled_sum']}"
___etny_result___(summary + f", max {stats['max']} -> {scaled['scaled_max']}")
"""

with DAG(
    dag_id="ethernity_pipeline",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    params={"label": "primes", "numbers": [2, 3, 5, 7, 11, 13]},
    render_template_as_native_obj=True,
    tags=["ethernity", "example"],
    doc_md=__doc__,
):
    stats = EthernityRunTaskOperator(
        task_id="stats",
        code="code/stats.py",
        input_data="{{ params.numbers }}",
        resources={"taskPrice": 2},
    )
    scale = EthernityRunTaskOperator(
        task_id="scale",
        code=SCALE,
        input_data=stats.output,
        resources={"taskPrice": 2},
        wait_for_completion=False,
    )
    scale_result = EthernityTaskSensor(task_id="scale_result", submit_task_id="scale", timeout=600)
    report = EthernityRunTaskOperator(
        task_id="report",
        code=REPORT,
        input_data={"stats": stats.output, "scaled": scale_result.output},
        resources={"taskPrice": 2},
    )
    scale >> scale_result >> report
