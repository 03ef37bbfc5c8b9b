"""Annotated field types shared by the config models: quantities with units, bounded numbers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from simulator import units
from simulator.errors import unprintable
from simulator.limits import MAX_INT, MAX_TRAIN_TOKENS


class Strict(BaseModel):
    """Base of every config section: unknown keys are errors, values are frozen, no lax coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True,
                              allow_inf_nan=False)


@dataclass(frozen=True)
class Unit:
    """Marks a field as a quantity of a unit kind (read by the YAML reference generator)."""

    kind: str


def _quantity(kind: str, most: tuple[float, str, str] | None = None, **bounds: float) -> Any:
    """A float read with ``kind``'s units; ``most``: (ceiling, how it reads, why) of a plausible value,
    a finite number far above every real part (an absurd input gives an absurd result otherwise)."""
    checks: list = [BeforeValidator(units.parser(kind)), Field(**bounds)]
    if most is not None:
        ceiling, shown, why = most

        def at_most(value: float) -> float:
            if value > ceiling:
                raise ValueError(f"expected at most {shown} ({why})")
            return value
        checks.append(AfterValidator(at_most))
    return Annotated[(float, *checks, Unit(kind))]


Bandwidth = _quantity("bandwidth", (1e15, "1 PB/s", "HBM3e is 8 TB/s, the fastest storage tens of TB/s"), gt=0)
Size = _quantity("size", (1e15, "1 PB", "a GPU holds at most a few hundred GB"), gt=0)
Power = _quantity("power", (1e9, "1 GW", "a GPU draws ~1 kW, a node ~15 kW, the largest sites ~1 GW"), ge=0)
Energy = _quantity("energy", ge=0)
Flops = _quantity("flops", (1e18, "1 EFLOP/s", "one GPU's densest peak is ~15 PFLOP/s"), gt=0)
Duration = _quantity("time", ge=0)
PositiveDuration = _quantity("time", gt=0)
Count = _quantity("count", gt=0)
# tokens of a training run: at most limits.MAX_TRAIN_TOKENS
Tokens = _quantity("count", (MAX_TRAIN_TOKENS, f"{MAX_TRAIN_TOKENS:.0e} tokens",
                             "today's largest runs train on 15-36T"), gt=0)
Money = _quantity("money", (1e12, "1e12 USD", "a GPU-hour costs a few dollars, a GPU tens of thousands"), ge=0)
EnergyPrice = _quantity("energy_price", ge=0)
CarbonIntensity = _quantity("carbon_intensity", ge=0)
Fraction = Annotated[float, BeforeValidator(units.parser("ratio")), Field(gt=0, le=1)]

# every integer key is at most MAX_INT (10^9): no size, count or step number of a training run is
# larger, and the loops and products over such values stay short and exact (simulator/limits.py)
PosInt = Annotated[int, Field(gt=0, le=MAX_INT)]
NonNegInt = Annotated[int, Field(ge=0, le=MAX_INT)]
PosFloat = Annotated[float, BeforeValidator(units.parser("ratio")), Field(gt=0)]
NonNegFloat = Annotated[float, BeforeValidator(units.parser("ratio")), Field(ge=0)]


def _int_or_auto(value: object) -> object:
    if value == "auto":
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("expected a positive integer or 'auto'")
    return value


IntOrAuto = Annotated[Any, BeforeValidator(_int_or_auto)]

def _printable(text: str) -> str:
    """A name is printed in headers, tables, reports and file names: one line, no terminal escape
    codes or other control characters, no bidirectional overrides (errors.unprintable)."""
    bad = next((ch for ch in text if unprintable(ch)), None)
    if bad is not None:
        raise ValueError(f"expected printable text on one line (it holds the control character "
                         f"U+{ord(bad):04X})")
    if not text.strip():
        raise ValueError("expected a name, not blank text")
    if len(text) > MAX_NAME_CHARS:
        raise ValueError(f"expected a name of at most {MAX_NAME_CHARS} characters (it has {len(text):,})")
    return text


MAX_NAME_CHARS = 200   # a name heads the summary and the report, and names plot files
Label = Annotated[str, AfterValidator(_printable)]


def _duration_or_auto(value: object) -> object:
    if value == "auto":
        return value
    seconds = units.parse(value, "time")
    if seconds <= 0:
        raise ValueError("expected a positive duration such as '1 h', or 'auto'")
    return seconds


DurationOrAuto = Annotated[Any, BeforeValidator(_duration_or_auto), Unit("time")]   # seconds, or "auto"
