"""Write a step's events as a Chrome trace (opens in Perfetto / chrome://tracing)."""
from __future__ import annotations

import json
from pathlib import Path

from simulator.errors import ConfigError


def write_chrome_trace(events: list[dict], path: str | Path, metadata: dict | None = None) -> None:
    out = Path(path)
    if out.parent and not out.parent.exists():
        raise ConfigError("folder does not exist", source="--trace", value=str(path),
                          expected="a file path in an existing folder")
    doc = {"traceEvents": events, "displayTimeUnit": "ms", "otherData": metadata or {}}
    out.write_text(json.dumps(doc), encoding="utf-8")
