"""A cluster's hourly carbon-intensity profile (prices.carbon_intensity_profile): read and checked
when the cluster is loaded, so a missing or malformed file is an input error before any work."""
from __future__ import annotations

import csv
import functools
import io
import math
from pathlib import Path

from simulator.errors import ConfigError
from simulator.files import read_text
from simulator.limits import MAX_CSV_BYTES


@functools.lru_cache(maxsize=16)
def _profile(path: str, mtime_ns: int) -> tuple[float, ...]:
    return tuple(_read(Path(path)))


def read_profile(path: Path) -> list[float]:
    """Hourly carbon intensity (kg/kWh) from a CSV: one value per row, last column, header allowed
    (remembered per file and modification time: a study builds thousands of scenarios)."""
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        mtime = -1   # read_text says what is wrong
    return list(_profile(str(path), mtime))


def _read(path: Path) -> list[float]:
    text = read_text(path, MAX_CSV_BYTES, what="a CSV of hourly kg/kWh", key="prices.carbon_intensity_profile")
    values = []
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ConfigError(f"not a valid CSV ({exc})", source=str(path), path="prices.carbon_intensity_profile",
                          expected="kg/kWh per hour") from None
    for i, row in enumerate(rows):
        if not row:
            continue
        try:
            values.append(float(row[-1]))
        except ValueError:
            if i == 0:
                continue   # header
            raise ConfigError(f"row {i + 1} is not a number", source=str(path), value=row[-1],
                              path="prices.carbon_intensity_profile", expected="kg/kWh per hour") from None
    if not values or any(v < 0 or not math.isfinite(v) for v in values):
        raise ConfigError("needs at least one non-negative hourly value", source=str(path),
                          path="prices.carbon_intensity_profile", expected="kg/kWh per hour")
    return values
