"""Write a step's events as a Chrome trace (opens in Perfetto / chrome://tracing)."""
from __future__ import annotations

import json
from pathlib import Path

from simulator.outputs import write_text


def write_chrome_trace(events: list[dict], path: str | Path, metadata: dict | None = None) -> None:
    doc = {"traceEvents": events, "displayTimeUnit": "ms", "otherData": metadata or {}}
    write_text(path, json.dumps(doc))
