"""A study's unit of work: one Case (overrides, GPU count, efficiencies) simulated into one flat row.

Workers receive the raw YAML mappings (Inputs), never file paths, so a Dask worker on another
machine needs no shared file system. Every case is simulated from the same seed: two cases differ
only by what the case changes (common random numbers), and a row never depends on which process,
batch or executor computed it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator.calibration.bands import BAND_KEYS, band_json, shipped_band_for
from simulator.calibration.file import describe, from_cluster
from simulator.config.loader import read_yaml
from simulator.config.overrides import Override, parse_override
from simulator.config.scenario import Scenario, build_scenario, load_scenario
from simulator.explore.confidences import days_key
from simulator.cost.efficiency import DEFAULT
from simulator.errors import ConfigError, InfeasibleError, clip

# Result.to_json() keys copied into a row, in column order (absent keys stay empty, never made up)
METRICS = ("layout", "num_gpus", "step_time_s", "mfu", "tokens_per_s", "memory_per_gpu_gib",
           "fits_in_memory", "ideal_time_to_train_days", "time_to_train_days", "time_to_train_days_p10",
           "time_to_train_days_p50", "time_to_train_days_p90", "time_to_train_reason", "ettr", "failures_total", "gpu_hours",
           "energy_mwh", "avg_power_mw", "peak_power_mw", "co2_tonnes", "cost_usd")
BREAKDOWN = ("compute", "recompute", "tp_comm", "cp_comm", "ep_comm", "pp_comm", "bubble", "dp_comm",
             "optimizer")
LOST = ("lost_work", "detection", "waiting_for_spares", "restart", "checkpoint", "stragglers",
        "fewer_replicas", "planned_maintenance", "evaluation", "time_limit")
# the P10-P90 prediction band of each metric (simulator.calibration.bands) and the calibration used
BAND = BAND_KEYS + ("calibration",)
RESULT_COLUMNS = (("status", "error") + METRICS + BAND + tuple(f"breakdown_{k}_s" for k in BREAKDOWN)
                  + tuple(f"lost_{k}_days" for k in LOST))


@dataclass(frozen=True)
class Inputs:
    """One workload and its cluster as raw YAML mappings, with the names used in messages."""

    wraw: dict
    craw: dict
    workload_source: str
    cluster_source: str
    calibration: Any = None          # the cluster's `calibration:` file, read (calibration.file.Applied)


@dataclass(frozen=True)
class Case:
    """What one simulation of a study changes with respect to its Inputs."""

    label: str
    params: tuple[tuple[str, str], ...] = ()       # (column, value text) shown in tables and files
    source: int = 0                                # index into the study's tuple of Inputs
    overrides: tuple[str, ...] = ()                # `--set` texts, applied in order
    # the option that wrote each override, named in messages ("--grid", "--vary"); default --set
    options: tuple[str, ...] = ()
    gpus: int | None = None
    efficiency: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class SimOptions:
    """How each case is simulated (see simulator.simulate)."""

    engine: str = "des"
    replicas: int = 32
    seed: int = 0
    calibration: Any = None          # a --calibration file, read (calibration.file.Applied); wins over
                                     # the cluster's own `calibration:` (docs/calibration.md)
    campaign: bool = True


@dataclass(frozen=True)
class Study:
    """Everything a worker needs besides the cases: the inputs and the simulation options."""

    inputs: tuple[Inputs, ...]
    options: SimOptions = field(default_factory=SimOptions)


def read_inputs(workload: str | Path, cluster: str | Path | None = None, overrides: list[str] | None = None,
                gpus: int | None = None) -> tuple[Inputs, Scenario]:
    """Validate a workload (as `trainsim run` would) and return its raw Inputs and the Scenario."""
    s = load_scenario(workload, cluster=cluster, overrides=overrides, gpus=gpus)
    craw = read_yaml(Path(s.cluster_source))
    return Inputs(read_yaml(Path(workload)), craw, str(workload), s.cluster_source,
                  from_cluster(craw, s.cluster_source)), s


def with_cluster(inputs: Inputs, cluster: str | Path) -> Inputs:
    """The same workload on another cluster file (with that file's own calibration, if any)."""
    craw = read_yaml(Path(cluster))
    return Inputs(inputs.wraw, craw, inputs.workload_source, str(cluster), from_cluster(craw, str(cluster)))


def scenario_of(inputs: Inputs, case: Case) -> Scenario:
    overrides: list = list(case.overrides)
    for i, option in enumerate(case.options[:len(overrides)]):
        if option and option != "--set":
            ov = parse_override(overrides[i])
            overrides[i] = Override(ov.path, ov.value, ov.text, label=f"{option} {ov.text}")
    return build_scenario(inputs.wraw, inputs.craw, workload_source=inputs.workload_source,
                          cluster_source=inputs.cluster_source, overrides=overrides, gpus=case.gpus)


def flatten(data: dict) -> dict:
    """A Result.to_json() as one flat row of RESULT_COLUMNS (absent keys: None)."""
    row = {k: data.get(k) for k in METRICS}
    failures = data.get("failures")
    row["failures_total"] = failures.get("total") if isinstance(failures, dict) else None
    breakdown = data.get("breakdown") or {}
    row.update({f"breakdown_{k}_s": breakdown.get(k) for k in BREAKDOWN})
    lost = (data.get("campaign") or {}).get("time_lost_days") or {}
    row.update({f"lost_{k}_days": lost.get(k) for k in LOST})
    return row


def _blank(case: Case, status: str, error: str, extra: dict | None = None) -> dict:
    """A row with no results: the case's own axis values are kept, also where an axis shares its
    column with a result (a ``num_gpus`` axis)."""
    row = {"case": case.label, **{k: None for k in RESULT_COLUMNS}, **dict(case.params)}
    row.update(extra or {})
    row["status"], row["error"] = status, error
    return {k: row.get(k) for k in dict.fromkeys(("case", *dict(case.params), *RESULT_COLUMNS))}


def evaluate(study: Study, case: Case) -> dict:
    """Simulate one case into a row: ``status`` ok, invalid (exit-2 error) or infeasible (exit 3)."""
    from simulator import simulate

    opts = study.options
    try:
        inputs = study.inputs[case.source]
        s = scenario_of(inputs, case)
        applied = calibration_of(opts, inputs, s)
        eff = DEFAULT if applied is None else applied.efficiencies()
        eff = eff.with_(**dict(case.efficiency)) if case.efficiency else eff
        result = simulate(s, efficiency=eff, engine=opts.engine, replicas=opts.replicas, seed=opts.seed,
                          campaign=opts.campaign)
    except InfeasibleError as exc:
        mem = exc.details.get("memory_breakdown_gib", {}).get("total")
        return _blank(case, "infeasible", str(exc), {"memory_per_gpu_gib": mem, "fits_in_memory": False})
    except ConfigError as exc:
        return _blank(case, "invalid", str(exc))
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - a bug in one case is that case's row, not a dead study
        return _blank(case, "error", f"internal error (a bug in trainsim, please report it): "
                                     f"{type(exc).__name__}: {clip(str(exc))}")
    band = shipped_band_for(s) if applied is None else applied.band
    bands = band_json(result, band)
    row = {"case": case.label, **dict(case.params), **flatten(result.to_json()),
           **{k: bands.get(k) for k in BAND_KEYS}, "calibration": describe(applied)}
    row["status"], row["error"] = "ok", None
    return {k: row.get(k) for k in dict.fromkeys(("case", *dict(case.params), *RESULT_COLUMNS))}


def calibration_of(opts: SimOptions, inputs: Inputs, s: Scenario):
    """--calibration, else the cluster file's ``calibration:``; checked against the case's cluster."""
    if s.cluster.calibration != (inputs.craw.get("calibration") if isinstance(inputs.craw, dict) else None):
        raise ConfigError("a study cannot change the cluster's calibration per case", source=inputs.cluster_source,
                          path="calibration", value=s.cluster.calibration,
                          expected="the cluster file's own calibration: key, or --calibration FILE for the whole study")
    applied = opts.calibration if opts.calibration is not None else inputs.calibration
    if applied is not None:
        applied.check(s, quiet=True)
    return applied


def evaluate_batch(study: Study, cases: list[Case]) -> list[dict]:
    """Rows of several cases, in order (one executor task)."""
    return [evaluate(study, c) for c in cases]


def time_at(row: dict, confidence: str) -> float | None:
    """Days to train at ``confidence``; failure-free days when the row has no campaign."""
    value = row.get(days_key(confidence))
    if row.get("time_to_train_reason") not in (None, ""):
        return None if value in (None, "") else float(value)   # the campaign ran and did not finish
    if value in (None, ""):
        value = row.get("ideal_time_to_train_days")
    if value in (None, ""):
        return None
    value = float(value)
    return None if math.isnan(value) else value
