"""Quantities written with units in YAML ("400 Gb/s", "80 GiB", "15 min", "15.6T") -> SI floats.

Inside the simulator everything is SI: bytes, bytes/s, seconds, watts, joules, FLOP/s, US dollars,
kilograms of CO2e. Bits (b) and bytes (B) are told apart by case; decimal (GB) and binary (GiB)
prefixes are both accepted and never confused. A bare number where a unit is required is an error
that shows an example, because "400" could be Gb/s or GB/s and the two differ by 8x.
"""
from __future__ import annotations

import math
import re
from typing import Callable

from simulator.errors import short

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_PREFIXES = {**_DECIMAL, **_BINARY}


def _prefixed(base: dict[str, float], prefixes: dict[str, float]) -> dict[str, float]:
    return {p + name: scale * factor for name, factor in base.items() for p, scale in prefixes.items()}


# unit text -> SI factor, per kind of quantity
_TABLES: dict[str, dict[str, float]] = {
    "bandwidth": {  # bytes per second
        **_prefixed({"B/s": 1.0, "Bps": 1.0}, _PREFIXES),
        **_prefixed({"b/s": 0.125, "bps": 0.125, "bit/s": 0.125}, _DECIMAL),
    },
    "size": _prefixed({"B": 1.0, "byte": 1.0, "bytes": 1.0}, _PREFIXES),  # bytes
    "power": _prefixed({"W": 1.0}, _DECIMAL),  # watts
    "energy": {**_prefixed({"J": 1.0, "Wh": 3600.0}, _DECIMAL)},  # joules
    "flops": _prefixed({"FLOP/s": 1.0, "FLOPS": 1.0, "flop/s": 1.0}, _DECIMAL),  # FLOP per second
    "time": {  # seconds
        "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0,
        "min": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
        "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0, "week": 604800.0,
        "weeks": 604800.0, "y": 365.25 * 86400.0, "year": 365.25 * 86400.0,
    },
    "count": {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12, "P": 1e15},
    "money": {"USD": 1.0, "$": 1.0, "kUSD": 1e3, "KUSD": 1e3, "MUSD": 1e6, "BUSD": 1e9, "GUSD": 1e9,
              "TUSD": 1e12},  # US dollars ($2B: billions)
    "energy_price": {  # USD per joule
        "USD/kWh": 1.0 / 3.6e6, "USD/MWh": 1.0 / 3.6e9, "USD/Wh": 1.0 / 3600.0, "USD/J": 1.0,
    },
    "carbon_intensity": {  # kg CO2e per joule
        "kg/kWh": 1.0 / 3.6e6, "g/kWh": 1e-3 / 3.6e6, "t/MWh": 1e3 / 3.6e9, "kg/MWh": 1.0 / 3.6e9,
        "kg/J": 1.0,
    },
    "ratio": {"": 1.0, "%": 0.01},
}

_EXAMPLES = {
    "bandwidth": "'400 Gb/s' or '450 GB/s'", "size": "'80 GiB' or '2.3 TB'", "power": "'700 W' or '2.5 kW'",
    "energy": "'1.2 MWh'", "flops": "'989 TFLOP/s'", "time": "'15 min', '1 h' or '54 d'",
    "count": "'15.6T' or 2048", "money": "'2.5 USD'", "energy_price": "'0.08 USD/kWh'",
    "carbon_intensity": "'0.4 kg/kWh'", "ratio": "0.9 or '90 %'",
}
# kinds where a plain number already means something unambiguous
_BARE_OK = {"count", "ratio"}

KINDS = tuple(_TABLES)


def example(kind: str) -> str:
    return _EXAMPLES[kind]


def parse(value: object, kind: str) -> float:
    """Parse ``value`` as a quantity of ``kind`` and return it in SI units.

    Raises ValueError with a message that says what was expected (the config layer adds the file and
    key path).
    """
    table = _TABLES[kind]
    if isinstance(value, bool):
        raise ValueError(f"expected a {kind.replace('_', ' ')} such as {_EXAMPLES[kind]}, not a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    if isinstance(value, (int, float)):
        if kind in _BARE_OK:
            return float(value)
        raise ValueError(f"a bare number is ambiguous here; write the unit, e.g. {_EXAMPLES[kind]}")
    if not isinstance(value, str):
        raise ValueError(f"expected a {kind.replace('_', ' ')} such as {_EXAMPLES[kind]}")
    if len(value) > 100:
        raise ValueError(f"cannot read {short(value)} as a {kind.replace('_', ' ')}: too long; write e.g. "
                         f"{_EXAMPLES[kind]}")
    text = value.strip().replace("\u00b7", "")
    if kind == "money" and text.startswith("$"):
        text = text[1:].strip() + " USD"
    if kind == "money":   # thousands separators: $1,200,000
        text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    m = _NUMBER.match(text)
    if not m:
        raise ValueError(f"cannot read {short(value)} as a {kind.replace('_', ' ')}; write e.g. {_EXAMPLES[kind]}")
    number, unit = float(m.group(1)), m.group(2).replace(" ", "")
    if unit not in table:
        if not unit and kind not in _BARE_OK:
            raise ValueError(f"{short(value)} has no unit; write it with one, e.g. {_EXAMPLES[kind]}")
        raise ValueError(f"unknown unit {short(m.group(2).strip())} for a {kind.replace('_', ' ')}; write e.g. "
                         f"{_EXAMPLES[kind]}")
    result = number * table[unit]
    if not math.isfinite(result):
        raise ValueError(f"{short(value)} is not a finite {kind.replace('_', ' ')}")
    return result


def parser(kind: str) -> Callable[[object], float]:
    """A one-argument parser for ``kind`` (for pydantic validators)."""
    if kind not in _TABLES:
        raise KeyError(kind)
    return lambda value: parse(value, kind)


def fmt_duration(seconds: float) -> str:
    """Human duration: '2.31 s', '14.2 min', '3.4 h', '95.3 d'."""
    s = abs(seconds)
    if s < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if s < 1:
        return f"{seconds * 1e3:.3g} ms"
    if s < 120:
        return f"{seconds:.3g} s"
    if s < 7200:
        return f"{seconds / 60:.3g} min"
    if s < 3 * 86400:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.4g} d"


def fmt_si(value: float, unit: str = "", digits: int = 3, billion: str = "G") -> str:
    """'1.82 M', '405 G' style formatting with decimal prefixes (``billion="B"`` for counts)."""
    for prefix, scale in (("P", 1e15), ("T", 1e12), (billion, 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}".rstrip()
    return f"{value:.{digits}g} {unit}".rstrip()
