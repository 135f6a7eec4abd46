"""Figures: one measured value with its goal; printed as a table and written as JSON."""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One row: ``met`` is None when the figure has no goal (context only)."""

    benchmark: str
    metric: str
    value: float | int | str
    unit: str = ""
    goal: str = ""
    met: bool | None = None
    note: str = ""

    def shown_value(self) -> str:
        if isinstance(self.value, float):
            text = f"{self.value:.3g}" if abs(self.value) < 100 else f"{self.value:,.0f}"
        elif isinstance(self.value, int):
            text = f"{self.value:,}"
        else:
            text = str(self.value)
        return f"{text} {self.unit}".strip()

    def shown_met(self) -> str:
        return "-" if self.met is None else ("yes" if self.met else "NO")


def render(figures: list[Figure]) -> str:
    header = ("benchmark", "metric", "value", "goal", "met")
    rows = [(f.benchmark, f.metric, f.shown_value(), f.goal or "-", f.shown_met()) for f in figures]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    """What the figures were measured on (cores, CPU model, RAM, load)."""
    import os

    model = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "ram_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def write_json(path: Path, figures: list[Figure], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        **meta,
        "figures": [asdict(f) for f in figures],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
