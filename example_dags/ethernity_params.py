"""ethernity_params: run any code on Ethernity Cloud from the Airflow UI's trigger form.

Trigger it with "Trigger DAG" and edit the form: the Python code (it reads ``___etny_data_set___`` and returns
with ``___etny_result___(value)``), its input dataset, and the resources, validated by the form's schema.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from airflow_provider_ethernity.operators.ethernity import EthernityRunTaskOperator

DEFAULT_CODE = """import json
words = json.loads(___etny_data_set___)
___etny_result___(" ".join(w.upper() for w in words))
"""

with DAG(
    dag_id="ethernity_params",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
    params={
        "code": Param(DEFAULT_CODE, type="string", format="multiline", title="Python code", minLength=1),
        "input": Param('["hello", "confidential", "world"]', type="string", title="Input dataset"),
        "resources": Param(
            {"taskPrice": 2, "cpu": 1, "memory": 1, "storage": 40, "bandwidth": 1, "duration": 1, "validators": 1},
            type="object",
            title="Resources",
            properties={
                "taskPrice": {"type": "integer", "minimum": 1, "maximum": 255},
                "cpu": {"type": "integer", "minimum": 1, "maximum": 255},
                "memory": {"type": "integer", "minimum": 1, "maximum": 255},
                "storage": {"type": "integer", "minimum": 1, "maximum": 255},
                "bandwidth": {"type": "integer", "minimum": 1, "maximum": 255},
                "duration": {"type": "integer", "minimum": 1, "maximum": 65535},
                "validators": {"type": "integer", "minimum": 1, "maximum": 255},
            },
            additionalProperties=False,
        ),
        # "null" in the type makes the field optional in the trigger form (an empty required field blocks it)
        "node_address": Param(
            None, type=["null", "string"], title="Pin to node (optional)", pattern="^(0x[0-9a-fA-F]{40})?$"
        ),
    },
    tags=["ethernity", "example"],
    doc_md=__doc__,
):
    EthernityRunTaskOperator(
        task_id="run",
        code="{{ params.code }}",
        input_data="{{ params.input }}",
        resources="{{ params.resources }}",
        node_address="{{ params.node_address }}",
    )
