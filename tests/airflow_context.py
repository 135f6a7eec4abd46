"""A small stand-in for the task context an operator gets: a TI that records XComs, a task state store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class RecordingTI:
    """Records ``xcom_push`` calls; ``xcom_pull`` reads them back (and from ``upstream``)."""

    def __init__(self, upstream: dict[tuple[str, str], Any] | None = None) -> None:
        self.xcoms: dict[str, Any] = {}
        self.upstream = upstream or {}
        self.task_id = "task"
        self.try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must serialize
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value", **_: Any) -> Any:
        return self.upstream.get((task_ids or "", key))


class FileStateStore:
    """``task_state_store`` backed by a JSON file, so a killed process's state survives into the retry."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        data = self._read()
        data[key] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.path)


def make_context(store: Any = None, ti: RecordingTI | None = None) -> dict[str, Any]:
    return {"ti": ti or RecordingTI(), "task_state_store": store}


class SupersededStore:
    """``task_state_store`` as Airflow 3.3.2 serves a superseded try: the API server no longer finds the try's
    task instance, so every read answers "not found" (which the SDK returns as the default) and writes are
    refused (the SDK does not raise on the error answer of ``set``)."""

    def __init__(self) -> None:
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return default

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.writes += 1
