# ruff: noqa: F821 - the enclave defines ___etny_data_set___ and ___etny_result___
# Runs in the enclave: the input dataset arrives as ___etny_data_set___ (a string),
# the result leaves through ___etny_result___(value). Rendered by Jinja first: {{ params.label }}.
import json

numbers = json.loads(___etny_data_set___)
___etny_result___({"label": "{{ params.label }}", "count": len(numbers), "sum": sum(numbers), "max": max(numbers)})
