"""The calibration file: what ``trainsim calibrate`` writes and ``--calibration FILE`` reads.

    trainsim_version: 0.1.0
    cluster: {name: dgx-h100-superpod, gpu: h100-sxm, identity: sha256 of the cluster as validated}
    efficiency: {gemm: 0.81, ...}            # every fitted parameter (the others stay shipped)
    moved: [gemm]
    residuals: [{run, metric, measured, predicted, error, loo_predicted, loo_error, ratio}]

A file from another trainsim version, or for a cluster of another name or GPU, is refused (exit 2):
the efficiencies belong to one version of the cost model and to one machine. A cluster of the same
name whose description changed since calibrating is accepted with a warning.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import yaml

import simulator
from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.errors import ConfigError


def cluster_identity(scenario) -> dict:
    c = scenario.cluster
    desc = {k: v for k, v in c.model_dump(mode="json").items() if k != "num_nodes"}   # size may differ per run
    dump = json.dumps(desc, sort_keys=True, default=str)
    return {"name": c.name, "gpu": scenario.gpu.name,
            "identity": hashlib.sha256(dump.encode()).hexdigest()[:16]}


def to_mapping(cal, scenario) -> dict:
    from simulator.calibration.bands import ratio

    res = []
    for r, l in zip(cal.rows, cal.loo):
        res.append({"run": r.run, "metric": r.metric, "measured": r.published, "predicted": r.predicted,
                    "error": r.error, "loo_predicted": l.predicted, "loo_error": l.error,
                    "ratio": ratio(l.metric, l.published, l.predicted)})
    return {"trainsim_version": simulator.__version__, "cluster": cluster_identity(scenario),
            "efficiency": {n: getattr(cal.efficiency, n) for n in cal.names},
            "moved": sorted(cal.moved), "residuals": res}


def write(mapping: dict, out: str | Path, force: bool) -> None:
    out = Path(out)
    if out.exists() and not force:
        raise ConfigError("output file exists", source="--out", value=str(out),
                          expected="a new path, or --force to overwrite it")
    try:
        out.write_text(yaml.safe_dump(mapping, sort_keys=False), encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write the calibration ({e.strerror})", source="--out", value=str(out)) from None


def read(path: str | Path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read the calibration file ({e.strerror})", source=str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML ({e.__class__.__name__})", source=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("not a calibration file", source=str(path), expected="a mapping written by trainsim calibrate")
    for key in ("trainsim_version", "cluster", "efficiency", "residuals"):
        if key not in data:
            raise ConfigError("missing key", source=str(path), path=key, expected="a file written by trainsim calibrate")
    extra = set(data) - {"trainsim_version", "cluster", "efficiency", "moved", "residuals"}
    if extra:
        raise ConfigError("unknown key", source=str(path), path=sorted(extra)[0],
                          expected="trainsim_version, cluster, efficiency, moved, residuals")
    if str(data["trainsim_version"]) != simulator.__version__:
        raise ConfigError("calibration made with another trainsim version", source=str(path),
                          path="trainsim_version", value=str(data["trainsim_version"]),
                          expected=f"{simulator.__version__} (rerun trainsim calibrate with this version)")
    fields = {f.name for f in dataclasses.fields(Efficiency)}
    eff = data["efficiency"]
    if not isinstance(eff, dict):
        raise ConfigError("not a mapping", source=str(path), path="efficiency")
    for k, v in eff.items():
        if k not in fields:
            raise ConfigError("unknown efficiency", source=str(path), path=f"efficiency.{k}", expected=", ".join(sorted(fields)))
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise ConfigError("not a positive number", source=str(path), path=f"efficiency.{k}", value=v)
    return data


def check_cluster(path, data: dict, scenario) -> None:
    want = cluster_identity(scenario)
    got = data["cluster"] if isinstance(data["cluster"], dict) else {}
    for key in ("name", "gpu"):
        if got.get(key) != want[key]:
            raise ConfigError("calibration made for another cluster", source=str(path), path=f"cluster.{key}",
                              value=got.get(key), expected=f"{want[key]} (the cluster of this run)")


def for_study(path: str | Path | None) -> tuple[tuple, tuple]:
    """(efficiency pairs, (cluster name, GPU)) of a calibration file for studies and levers; empty without one."""
    if path is None:
        return (), ()
    data = read(path)
    c = data["cluster"] if isinstance(data["cluster"], dict) else {}
    return tuple((k, float(v)) for k, v in data["efficiency"].items()), (str(path), c.get("name"), c.get("gpu"))


def efficiency_for(path: str | Path, scenario, out=sys.stderr) -> tuple[Efficiency, list[float]]:
    """The calibrated efficiencies of ``path`` for ``scenario``'s cluster and its residual ratios."""
    data = read(path)
    check_cluster(path, data, scenario)
    want, got = cluster_identity(scenario), data["cluster"]
    if got.get("identity") != want["identity"] and out is not None:
        print(f"warning: {path}: cluster {want['name']} changed since it was calibrated "
              "(its description differs); the calibration is applied as is", file=out)
    try:
        ratios = [float(r["ratio"]) for r in data["residuals"]]
    except (TypeError, KeyError, ValueError):
        raise ConfigError("malformed residuals", source=str(path), path="residuals",
                          expected="a list written by trainsim calibrate") from None
    return DEFAULT.with_(**{k: float(v) for k, v in data["efficiency"].items()}), ratios
