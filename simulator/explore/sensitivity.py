"""`trainsim sensitivity`: how much time to train and cost move when each key input moves ±X%.

Every case runs from the same seed (common random numbers), so a difference comes from the input,
not from Monte Carlo noise. A value pushed outside its valid range is clamped (PUE cannot go below
1, an efficiency above 1); the table shows the value actually used.
"""
from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

from simulator.config.scenario import Scenario
from simulator.errors import ConfigError
from simulator.explore.cases import Case, Inputs, SimOptions, Study, time_at
from simulator.explore.sweep import base_efficiency, run_cases
from simulator.explore.values import base_value, check_key, display, scaled_text
from simulator.model.training import plan

_RATES = ("gpu_failures_per_gpu_hour", "host_failures_per_node_hour", "network_failures_per_node_hour",
          "software_failures_per_node_hour")
# name -> (label, keys moved together)
INPUTS = {
    "nic": ("NIC bandwidth", ("cluster.node.nic_bandwidth",)),
    "gemm": ("GEMM efficiency", ("efficiency.gemm",)),
    "failures": ("failure rates", tuple(f"cluster.reliability.{k}" for k in _RATES)),
    "checkpoint": ("checkpoint bandwidth", ("checkpoint.storage_bandwidth",)),
    "pue": ("PUE", ("cluster.power.pue",)),
    "gpu_price": ("GPU-hour price", ("cluster.prices.gpu_hour",)),
    "energy_price": ("energy price", ("cluster.prices.energy",)),
}
BOUNDS = {"cluster.power.pue": (1.0, 3.0), "efficiency.gemm": (0.0, 1.0), "efficiency.network": (0.0, 1.0),
          "efficiency.memory": (0.0, 1.0), "efficiency.attention": (0.0, 1.0)}


@dataclass(frozen=True)
class Factor:
    name: str
    label: str
    keys: tuple[str, ...]


@dataclass
class Swing:
    factor: Factor
    low: dict            # row at -X%
    high: dict           # row at +X%
    low_value: str       # the first key's value used, as text
    high_value: str


@dataclass
class SensitivityResult:
    percent: float
    confidence: str
    base: dict
    swings: list[Swing]  # largest swing in time or cost first


def factors(names: list[str] | None, extra_keys: list[str] | None) -> list[Factor]:
    chosen = names or list(INPUTS)
    unknown = [n for n in chosen if n not in INPUTS]
    if unknown:
        raise ConfigError("unknown input", source="--inputs", value=",".join(unknown),
                          expected=", ".join(INPUTS) + " (or --add KEY for any numeric key)")
    for key in extra_keys or []:
        if not key.startswith("efficiency."):
            check_key(key, "--add")
    out = [Factor(n, *INPUTS[n]) for n in chosen]
    return out + [Factor(k, k, (k,)) for k in extra_keys or []]


def _moved(s: Scenario, key: str, factor: float, eff=None) -> tuple[str | None, tuple | None, str]:
    """(override text or None, efficiency pair or None, value shown) for key x factor, clamped
    (an efficiency around ``eff``'s value: the calibrated one, or the shipped one when None)."""
    base, kind = base_value(s, key, "sensitivity", eff)
    lo, hi = BOUNDS.get(key, (float("-inf"), float("inf")))
    value = min(max(base * factor, lo), hi)
    # the table says so where the move was cut at the input's bound (an efficiency at 1, PUE at 1)
    bound = " (bound)" if value != base * factor else ""
    if key.startswith("efficiency."):
        return None, (key.split(".", 1)[1], value), f"{value:.4g}{bound}"
    integer = isinstance(base, int)
    if integer:
        exact = value
        value = max(1, round(value))
        if not bound and value != exact:   # a whole-number key: the move the table shows is not X %
            bound = f" (rounded, {100 * (value / base - 1):+.3g} %)" if base else " (rounded)"
    return f"{key}={scaled_text(value, kind, integer)}", None, display(value, kind, key) + bound


def _case(s: Scenario, f: Factor, factor: float, sign: str, overrides: tuple[str, ...], eff=None) -> tuple[Case, str]:
    ovs, effs = [], []
    shown = f"x{factor:g}" if len(f.keys) > 1 else ""
    for key in f.keys:
        ov, pair, text = _moved(s, key, factor, eff)
        shown = shown or text
        if ov:
            ovs.append(ov)
        if pair:
            effs.append(pair)
    return Case(f"{f.name} {sign}", (("input", f.label), ("change", sign)), overrides=overrides + tuple(ovs),
                efficiency=tuple(effs)), shown


def _swing(base: dict, row: dict, confidence: str, key: str) -> float:
    b = time_at(base, confidence) if key == "time" else base.get("cost_usd")
    v = time_at(row, confidence) if key == "time" else row.get("cost_usd")
    return 0.0 if b is None or v is None or row.get("status") != "ok" else abs(v - b)


def sensitivity(inputs: Inputs, scenario: Scenario, overrides: tuple[str, ...], percent: float,
                chosen: list[Factor], executor: Executor, options: SimOptions = SimOptions(),
                confidence: str = "p50", progress: bool = True) -> SensitivityResult:
    """Simulate the base and each factor at 1 - X and 1 + X; order by the larger swing."""
    if not 0 < percent < 100:
        raise ConfigError("must be between 0 and 100", source="--percent", value=percent, expected="e.g. 20")
    if plan(scenario.workload.training, scenario.workload.model.seq_length) is None:   # as search and size
        raise ConfigError("the workload does not say how long to train (the swings are in days and dollars "
                          "of the whole run)", source=inputs.workload_source, path="training.train_tokens",
                          expected="training.train_tokens or training.train_iters")
    eff = base_efficiency(options.calibration, inputs)
    x = percent / 100.0
    cases, shown = [Case("base", (("input", "base"), ("change", "")), overrides=overrides)], []
    for f in chosen:
        low, lo_text = _case(scenario, f, 1 - x, f"-{percent:g}%", overrides, eff)
        high, hi_text = _case(scenario, f, 1 + x, f"+{percent:g}%", overrides, eff)
        cases += [low, high]
        shown.append((lo_text, hi_text))
    rows = run_cases(Study((inputs,), options), cases, executor, progress=progress, label="sensitivity")
    base = rows[0]
    swings = [Swing(f, rows[1 + 2 * i], rows[2 + 2 * i], *shown[i]) for i, f in enumerate(chosen)]
    swings.sort(key=lambda sw: -max(_swing(base, r, confidence, k) / max(_norm(base, confidence, k), 1e-30)
                                    for r in (sw.low, sw.high) for k in ("time", "cost")))
    return SensitivityResult(percent, confidence, base, swings)


def _norm(base: dict, confidence: str, key: str) -> float:
    v = time_at(base, confidence) if key == "time" else base.get("cost_usd")
    return abs(v) if v else 1.0
