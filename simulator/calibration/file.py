"""The calibration file: what ``trainsim calibrate`` writes and ``--calibration FILE`` reads.

    trainsim_version: 0.1.0
    cluster: {name: dgx-h100-superpod, gpu: h100-sxm, identity: sha256 of the cluster as validated}
    efficiency: {gemm: 0.81, ...}            # every fitted parameter (the others stay shipped)
    moved: [gemm]
    residuals: [{run, metric, measured, predicted, error, loo_predicted, loo_error, ratio}]

A file from another trainsim version, or for a cluster of another name or GPU, is refused (exit 2):
the efficiencies belong to one version of the cost model and to one machine. A cluster of the same
name whose description changed since calibrating is accepted with a warning.

Which calibration a run uses (``resolve``): ``--calibration FILE`` on the command line, else the
cluster YAML's ``calibration:`` key (a path relative to the cluster file), else none (the shipped
efficiencies and the shipped band). The choice is named in the output (``calibration`` in JSON).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

import simulator
from simulator.calibration.bands import Band, band_of
from simulator.config.safe_yaml import safe_load, yaml_problem
from simulator.cost.efficiency import DEFAULT, Efficiency, value_expected, value_problem
from simulator.errors import ConfigError
from simulator.files import read_text
from simulator.limits import MAX_YAML_BYTES

UNCALIBRATED = "none (shipped efficiencies)"


def cluster_identity(scenario) -> dict:
    c = scenario.cluster
    # the size may differ per run, and the calibration key names this file, not the machine
    desc = {k: v for k, v in c.model_dump(mode="json").items() if k not in ("num_nodes", "calibration")}
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
    """The calibration YAML to ``out`` through the one checked writer (simulator/outputs.py: a file
    name, never an existing file without --force, written whole or not at all)."""
    from simulator.outputs import check_output, write_text

    check_output(out, "--out", force=force)
    write_text(out, yaml.safe_dump(mapping, sort_keys=False))


def read(path: str | Path, named_by: str | None = None) -> dict:
    """A checked calibration mapping; messages name ``path`` (and ``named_by``: where the path came from)."""
    where = str(path) if named_by is None else f"{path} (named by {named_by})"
    path = Path(path)
    text = read_text(path, MAX_YAML_BYTES, what="a calibration file written by trainsim calibrate")
    try:
        data = safe_load(text, where)
    except yaml.YAMLError as e:
        raise ConfigError(yaml_problem(e), source=where) from None
    if not isinstance(data, dict):
        raise ConfigError("not a calibration file", source=where, expected="a mapping written by trainsim calibrate")
    for key in ("trainsim_version", "cluster", "efficiency", "residuals"):
        if key not in data:
            raise ConfigError("missing key", source=where, path=key, expected="a file written by trainsim calibrate")
    extra = set(data) - {"trainsim_version", "cluster", "efficiency", "moved", "residuals"}
    if extra:
        raise ConfigError("unknown key", source=where, path=sorted(extra)[0],
                          expected="trainsim_version, cluster, efficiency, moved, residuals")
    if str(data["trainsim_version"]) != simulator.__version__:
        raise ConfigError("calibration made with another trainsim version", source=where,
                          path="trainsim_version", value=str(data["trainsim_version"]),
                          expected=f"{simulator.__version__} (rerun trainsim calibrate with this version)")
    fields = {f.name for f in dataclasses.fields(Efficiency)}
    eff = data["efficiency"]
    if not isinstance(eff, dict):
        raise ConfigError("not a mapping", source=where, path="efficiency")
    for k, v in eff.items():
        if k not in fields:
            raise ConfigError("unknown efficiency", source=where, path=f"efficiency.{k}", expected=", ".join(sorted(fields)))
        problem = value_problem(k, v)
        if problem:
            raise ConfigError(problem, source=where, path=f"efficiency.{k}", value=v, expected=value_expected(k))
    return data


@dataclass(frozen=True)
class Applied:
    """A calibration chosen for a run: its efficiencies, its band and what it was made for."""

    efficiency: tuple                 # (name, value) pairs over the shipped values
    band: Band
    label: str                        # "FILE (--calibration)" or "FILE (calibration: in CLUSTER)"
    cluster: tuple                    # (name, GPU) it was made for
    identity: str = ""

    def efficiencies(self) -> Efficiency:
        return DEFAULT.with_(**dict(self.efficiency))

    def check(self, scenario, quiet: bool = False) -> None:
        """Refuse a scenario on another cluster (exit 2); warn when its description changed."""
        want = cluster_identity(scenario)
        for key, got in zip(("name", "gpu"), self.cluster):
            if got != want[key]:
                raise ConfigError("calibration made for another cluster", source=self.label, path=f"cluster.{key}",
                                  value=got, expected=f"{want[key]} (the cluster of this run)")
        if self.identity and self.identity != want["identity"] and not quiet:
            print(f"warning: {self.label}: cluster {want['name']} changed since it was calibrated "
                  "(its description differs); the calibration is applied as is", file=sys.stderr)


def load(path: str | Path, label: str, named_by: str | None = None) -> Applied:
    data = read(path, named_by)
    where = str(path) if named_by is None else f"{path} (named by {named_by})"
    c = data["cluster"] if isinstance(data["cluster"], dict) else {}
    try:
        ratios = [float(r["ratio"]) for r in data["residuals"]]
        band = band_of(ratios, origin=f"{path}, leave-one-out")
    except (TypeError, KeyError, ValueError):
        raise ConfigError("malformed residuals", source=where, path="residuals",
                          expected="a list of two or more positive ratios written by trainsim calibrate") from None
    return Applied(tuple((k, float(v)) for k, v in data["efficiency"].items()), band, label,
                   (c.get("name"), c.get("gpu")), str(c.get("identity") or ""))


def from_cluster(craw: dict, cluster_source: str) -> Applied | None:
    """The calibration the cluster YAML names with ``calibration:`` (a path relative to it), or None."""
    value = craw.get("calibration") if isinstance(craw, dict) else None
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("not a file name", source=cluster_source, path="calibration", value=value,
                          expected="the path of a file written by trainsim calibrate, relative to this file")
    path = Path(cluster_source).parent / value
    if not path.exists():
        raise ConfigError("calibration file not found", source=cluster_source, path="calibration", value=value,
                          expected=f"a file written by trainsim calibrate ({path} does not exist)")
    return load(path, f"{path} (calibration: in {cluster_source})", f"calibration: in {cluster_source}")


def from_option(path: str | Path | None, flag: str = "--calibration") -> Applied | None:
    """The calibration of ``--calibration FILE`` (or another ``flag``; None without the option)."""
    if path is None:
        return None
    return load(path, f"{path} ({flag})")


def resolve(option: str | Path | None, scenario, quiet: bool = False) -> Applied | None:
    """The calibration of a run: --calibration, else the cluster's ``calibration:`` key, else None.
    Checked against the scenario's cluster."""
    applied = from_option(option)
    if applied is None and scenario.cluster.calibration is not None:
        craw = {"calibration": scenario.cluster.calibration}
        applied = from_cluster(craw, scenario.cluster_source)
    elif applied is not None and scenario.cluster.calibration is not None and not quiet:
        print(f"note: --calibration {option} is used instead of the cluster's calibration: "
              f"{scenario.cluster.calibration}", file=sys.stderr)
    if applied is not None:
        applied.check(scenario, quiet)
    return applied


def describe(applied: Applied | None) -> str:
    return UNCALIBRATED if applied is None else applied.label
