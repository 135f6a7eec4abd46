"""Runs one task's code the way the trustedzone enclave does, in a child process of the node agent.

Usage: ``python -m airflow_provider_ethernity.devnet.enclave_exec TASK_JSON RESULT_JSON``; TASK_JSON holds
``{"code": ..., "input": ...}``; RESULT_JSON receives ``{"task_code": int, "result": str}``.

As in the enclave, the code sees its input dataset as ``___etny_data_set___`` (and ``ecld.input``) and ends
with ``___etny_result___(value)``; top-level expressions that are not None are joined as a text result.
Exceptions map to the enclave's task codes (KeyError 2, SyntaxWarning 3, anything else 4 BASE_EXCEPTION
with the traceback as the error text). This module imports nothing from the provider: it runs isolated.
"""

from __future__ import annotations

import ast
import json
import sys
import traceback
from typing import Any, NoReturn

SUCCESS, KEY_ERROR, SYNTAX_WARNING, BASE_EXCEPTION, PAYLOAD_NOT_DEFINED = 0, 2, 3, 4, 5


def _encode(data: Any) -> tuple[str, Any]:
    if isinstance(data, str):
        return "text", data
    if isinstance(data, (bytes, bytearray)):
        import base64

        return "base64", base64.b64encode(bytes(data)).decode()
    try:
        json.dumps(data)
        return "json", data
    except (TypeError, ValueError):
        return "json", json.loads(json.dumps(data, default=str))


def ___etny_result___(data: Any = None) -> NoReturn:
    kind, value = _encode(data)
    raise SystemExit([SUCCESS, json.dumps({"ecld": 1, "type": kind, "data": value, "esr": None}, default=str)])


class _Ecld:
    def __init__(self, input_data: str | None) -> None:
        self.input = input_data
        self.result = ___etny_result___
        self.caller = None


def execute(code: str, input_data: str | None) -> tuple[int, str]:
    if not code:
        return PAYLOAD_NOT_DEFINED, "Could not find the source file to execute"
    scope: dict[str, Any] = {
        "__name__": "__main__",
        "___etny_result___": ___etny_result___,
        "ecld_result": ___etny_result___,
    }
    scope["ecld"] = _Ecld(input_data)
    if input_data is not None:
        scope["___etny_data_set___"] = input_data
    try:
        outputs = []
        for node in ast.parse(code).body:
            if isinstance(node, ast.Expr):
                outputs.append(eval(compile(ast.Expression(node.value), "<task>", "eval"), scope))
            else:
                exec(compile(ast.Module([node], type_ignores=[]), "<task>", "exec"), scope)
        rendered = [o if isinstance(o, str) else json.dumps(o, default=str) for o in outputs if o is not None]
        ___etny_result___("\n".join(rendered))
    except SystemExit as exc:
        try:
            code_, data = exc.args[0][0], exc.args[0][1]
        except (IndexError, TypeError, KeyError):
            return BASE_EXCEPTION, f"BASE_EXCEPTION: {exc!r}\n{traceback.format_exc()}"
        return int(code_), data
    except KeyError as exc:
        return KEY_ERROR, f"KeyError: {exc.args[0] if exc.args else exc!r}"
    except SyntaxWarning as exc:
        return SYNTAX_WARNING, str(exc.args[0] if exc.args else exc)
    except BaseException as exc:
        return BASE_EXCEPTION, f"BASE_EXCEPTION: {exc!r}\n{traceback.format_exc()}"
    return SUCCESS, ""


def main(argv: list[str]) -> int:
    task_path, result_path = argv[1], argv[2]
    with open(task_path, encoding="utf-8") as fh:
        task = json.load(fh)
    task_code, result = execute(task.get("code") or "", task.get("input"))
    with open(result_path, "w", encoding="utf-8") as fh:
        json.dump({"task_code": task_code, "result": result}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
