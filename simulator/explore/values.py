"""`--vary` / `--grid` axes: ``key=v1,v2,...`` parsed like `--set` values, with ``xF`` multipliers.

A value is YAML text, exactly as after `--set key=` (``200 Gb/s``, ``8``, ``null``). A value written
``x2`` or ``x0.5`` multiplies the key's value in the base scenario (its file value or its default),
so ``cluster.reliability.gpu_failures_per_gpu_hour=x1,x2,x4`` needs no number copied from a YAML.
Keys ``efficiency.<field>`` set the cost model's global efficiencies (simulator.cost.efficiency),
and the key ``cluster`` (alone) picks a cluster YAML file, relative to the current directory.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass

from pydantic import BaseModel

from simulator.config.types import Unit
from simulator.cost.efficiency import DEFAULT, Efficiency, value_expected, value_problem
from simulator.errors import ConfigError

_MULTIPLIER = re.compile(r"^\s*[x×]\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
# SI unit text that simulator.units reads back exactly, per unit kind (bare: a plain number)
_SI_UNIT = {"bandwidth": "B/s", "size": "B", "power": "W", "energy": "J", "flops": "FLOP/s",
            "time": "s", "count": "", "money": "USD", "energy_price": "USD/J",
            "carbon_intensity": "kg/J", "ratio": ""}


@dataclass(frozen=True)
class Axis:
    """One key and the values it takes, as written on the command line."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Setting:
    """One resolved value of an axis: what it changes, and how it is labelled in tables."""

    key: str
    label: str                                  # the value as the user wrote it (``x2``, ``200 Gb/s``)
    override: str | None = None                 # ``key=value`` for load_scenario's overrides
    efficiency: tuple[str, float] | None = None  # (Efficiency field, value)
    cluster_file: str | None = None             # a cluster YAML path (key ``cluster``)


def split_values(text: str) -> list[str]:
    """Split on commas outside brackets and quotes: ``[1,2],3`` -> ``["[1,2]", "3"]``."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_axis(spec: str, option: str = "--vary") -> Axis:
    """``key=v1,v2`` -> Axis; a ConfigError (exit 2) names the option when it is malformed."""
    if "=" not in spec:
        raise ConfigError("expected key=value1,value2,...", source=option, value=spec,
                          expected="e.g. cluster.node.nic_bandwidth=200 Gb/s,400 Gb/s")
    key, raw = spec.split("=", 1)
    key = re.sub(r"\[(\d+)\]", r".\1", key.strip())      # phases[2].x -> phases.2.x, as --set
    values = split_values(raw)
    if not key or any(not p for p in key.split(".")):
        raise ConfigError("empty key", source=option, value=spec, expected="a dotted key path")
    if any(v == "" for v in values):
        raise ConfigError("empty value in the list", source=option, value=spec,
                          expected="comma-separated values, e.g. 1,2,4")
    return Axis(key, tuple(values))


def _model_of(annotation) -> type[BaseModel] | None:
    """The config section class inside an annotation such as ``MoEConfig | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def check_key(key: str, option: str = "--vary") -> None:
    """An unknown key is an input error for the whole study, not one failed case."""
    from simulator.config.errors import suggest

    parts = key.split(".")
    problem = _unknown_part(parts)
    if problem is None:
        return
    i, names = problem
    if names is None:
        raise ConfigError(f"unknown key: {'.'.join(parts[:i])} is a value, not a section with keys",
                          source=option, path=key, expected=f"{'.'.join(parts[:i])} itself")
    hint = suggest(parts[i], sorted(names))
    if not hint and i > 0 and _unknown_part(parts[i:]) is None:   # a whole key one section too deep
        hint = f" (did you mean {'.'.join(parts[i:])}?)"
    raise ConfigError(f"unknown key{hint}", source=option, path=key)


_SCALARS = (int, float, str, bool, type(None))


def _scalar(annotation) -> bool:
    """Whether a field holds a plain value only (a number, text, a flag; Annotated or Optional of one)."""
    if annotation in _SCALARS:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return True
    if origin is typing.Annotated:
        return _scalar(typing.get_args(annotation)[0])
    args = typing.get_args(annotation)
    return origin in (typing.Union, types.UnionType) and all(_scalar(a) for a in args)


def _unknown_part(parts: list[str]) -> tuple[int, set[str] | None] | None:
    """(index, the names allowed there) of the first part of a dotted key no config model has, names
    None where the part is below a plain value; None when every part is known (or below a free-form
    value, checked when loaded)."""
    from simulator.config.cluster import ClusterConfig
    from simulator.config.workload import WorkloadConfig

    cluster = parts[0] == "cluster"
    model: type[BaseModel] | None = ClusterConfig if cluster else WorkloadConfig
    for i, part in enumerate(parts):
        if cluster and i == 0:
            continue
        if model is None:
            return None     # below a free-form value (e.g. an inline GPU table): checked when loaded
        if part.isdigit():
            continue        # a position in a list (phases.2.num_gpus): the range is checked when applied
        fields = model.model_fields
        names = set(fields) | {f.alias for f in fields.values() if isinstance(f.alias, str)}
        if part not in names:
            return i, names
        info = fields.get(part)
        if info is not None and i + 1 < len(parts) and _scalar(info.annotation):
            return i + 1, None
        model = _model_of(info.annotation) if info is not None else None
    return None


# "x" then a sign, a digit, a dot, inf or nan: meant as a multiplier (a text value such as "xlarge" is not)
_MULTIPLIER_LIKE = re.compile(r"^\s*[x×]\s*([-+.\d]|inf|nan)", re.IGNORECASE)


def multiplier(text: str, option: str | None = None, key: str | None = None) -> float | None:
    """The factor of an ``xF`` value, or None when the value is not a multiplier. A value that looks
    like one but is not a positive finite factor (x-1, xinf, x1e400) is an error (naming ``option``
    and ``key`` when given)."""
    m = _MULTIPLIER.match(text)
    factor = float(m.group(1)) if m else None
    if (m is None and _MULTIPLIER_LIKE.match(text)) or (factor is not None and not math.isfinite(factor)):
        raise ConfigError("not a multiplier", source=option, path=key, value=text,
                          expected="x then a positive finite factor, e.g. x0.5 or x2")
    return factor


def _field_value(root: BaseModel, parts: list[str], key: str, option: str) -> tuple[object, str | None]:
    """(value, unit kind) of the field at ``parts`` below ``root``."""
    node: object = root
    kind = None
    for part in parts:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if not isinstance(node, BaseModel) or part not in type(node).model_fields:
            raise ConfigError("a multiplier needs a key with a base value", source=option, path=key,
                              expected="an existing numeric key of the workload or cluster")
        info = type(node).model_fields[part]
        kind = next((m.kind for m in info.metadata if isinstance(m, Unit)), None)
        node = getattr(node, part)
    return node, kind


def base_value(scenario, key: str, option: str = "--vary", efficiency: Efficiency | None = None) -> tuple[float, str | None]:
    """The base scenario's value of ``key`` in SI units, and its unit kind (None: a plain number);
    an ``efficiency.*`` key's base is ``efficiency`` (a calibration's values) or the shipped one."""
    parts = key.split(".")
    if parts[0] == "efficiency":
        if len(parts) != 2 or parts[1] not in {f.name for f in dataclasses.fields(Efficiency)}:
            raise ConfigError("unknown efficiency", source=option, path=key,
                              expected="efficiency." + ", efficiency.".join(f.name for f in dataclasses.fields(Efficiency)))
        return getattr(efficiency or DEFAULT, parts[1]), None
    root = scenario.cluster if parts[0] == "cluster" else scenario.workload
    value, kind = _field_value(root, parts[1:] if parts[0] == "cluster" else parts, key, option)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError("a multiplier needs a numeric base value", source=option, path=key,
                          value=value, expected="a key whose value is a number or a quantity")
    return value, kind


def scaled_text(value: float, kind: str | None, integer: bool) -> str:
    """YAML text for ``value`` (SI) that the config reads back exactly."""
    if integer:
        return str(int(round(value)))
    unit = _SI_UNIT.get(kind or "", "")
    return f"{value!r} {unit}".strip()


def display(value: float, kind: str | None, key: str = "") -> str:
    """A value in the units people write (NICs ``320 Gb/s``, storage ``1.6 TB/s``), for tables."""
    from simulator.units import fmt_duration, fmt_si

    if kind == "bandwidth":
        return fmt_si(value * 8, "b/s") if "nic" in key else fmt_si(value, "B/s")
    if kind == "energy_price":
        return f"{value * 3.6e6:.3g} USD/kWh"
    if kind == "carbon_intensity":
        return f"{value * 3.6e6:.3g} kg/kWh"
    if kind == "time":
        return fmt_duration(value)
    if kind in ("size", "power", "energy", "flops"):
        return fmt_si(value, {"size": "B", "power": "W", "energy": "J", "flops": "FLOP/s"}[kind])
    if kind == "money":
        return f"{value:.4g} USD"
    return f"{value:.4g}"


def resolve(axis: Axis, scenario, option: str = "--vary", efficiency: Efficiency | None = None) -> list[Setting]:
    """The Settings of an axis; multipliers are applied to ``scenario``'s value of the key (to
    ``efficiency``'s for an ``efficiency.*`` key: the calibrated values when there is a calibration)."""
    if axis.key != "cluster" and not axis.key.startswith("efficiency."):
        check_key(axis.key, option)
    out = []
    for text in axis.values:
        factor = multiplier(text, option, axis.key)
        if axis.key == "cluster":
            if factor is not None:
                raise ConfigError("a cluster file cannot be multiplied", source=option, value=text)
            out.append(Setting(axis.key, text, cluster_file=text))
            continue
        if axis.key.startswith("efficiency."):
            base, _ = base_value(scenario, axis.key, option, efficiency)
            value = base * factor if factor is not None else _efficiency_number(axis.key, text, option)
            _check_efficiency(axis.key, text, value, option)
            out.append(Setting(axis.key, text, efficiency=(axis.key.split(".", 1)[1], value)))
            continue
        if factor is None:
            out.append(Setting(axis.key, text, override=f"{axis.key}={text}"))
            continue
        base, kind = base_value(scenario, axis.key, option)
        integer = isinstance(base, int)
        if not math.isfinite(base * factor):
            raise ConfigError(f"{text.strip()} of {base} is not a finite number", source=option,
                              path=axis.key, value=text, expected="a factor giving a finite value")
        if integer and abs(base * factor - round(base * factor)) > 1e-9:
            raise ConfigError(f"x{factor:g} of {base} is not a whole number", source=option,
                              path=axis.key, value=text, expected="a factor giving an integer")
        out.append(Setting(axis.key, text, override=f"{axis.key}={scaled_text(base * factor, kind, integer)}"))
    return out


def _efficiency_number(key: str, text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError("expected a number", source=option, path=key, value=text,
                          expected="e.g. 0.7, or a multiplier such as x0.9") from None
    return value


def _check_efficiency(key: str, text: str, value: float, option: str) -> None:
    """Efficiencies are positive; the fractions of a peak rate (FRACTIONS) are at most 1."""
    field = key.split(".", 1)[1]
    gives = f" ({text} of {getattr(DEFAULT, field):g} is {value:g})" if multiplier(text) is not None else ""
    problem = value_problem(field, value)
    if problem:
        raise ConfigError(f"{problem}{gives}", source=option, path=key, value=text,
                          expected=f"{value_expected(field)}, or a multiplier giving one")
