"""The Python API of trainsim, for notebooks and scripts (docs/api.md).

Stable entry points: ``load``, ``simulate``, ``compare``, ``sweep``, ``search``. Each returns a
typed, frozen result with ``records()`` / ``to_dict()`` (plain lists and dicts of numbers and
text, NaN as None: ready for ``json.dumps``, a CSV writer or ``pandas.DataFrame`` if you have it)
and ``to_json()``. Units are those of the JSON contract (SI unless a key's name says otherwise).

    from simulator import api
    setup = api.load("workloads/llama3-8b.yaml", overrides={"parallelism.micro_batch_size": 2})
    run = api.simulate(setup, fast=True, replicas=8)
    run.to_dict()["time_to_train_days_p50"]

A bad input raises ``simulator.ConfigError`` (naming the key, value and what was expected), an
impossible one ``simulator.InfeasibleError``, exactly as the command line reports them. Results are
deterministic: the same setup and seed give the same numbers bit for bit.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from simulator.config.loader import read_yaml
from simulator.config.scenario import Scenario, build_scenario
from simulator.errors import ConfigError
from simulator.explore.cases import Inputs, SimOptions, Study
from simulator.explore.confidences import CONFIDENCES
from simulator.metrics.result import Result

__all__ = ["Setup", "Run", "Rows", "SearchOutcome", "load", "simulate", "compare", "sweep", "search"]

Overrides = Mapping[str, Any] | Sequence[str]


def _finite(value):
    from simulator.explore.handlers import finite

    return finite(value)


def _value_text(value: Any) -> str:
    """An override value as `--set` text: strings as written, anything else in YAML flow style."""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def override_texts(overrides: Overrides | None) -> tuple[str, ...]:
    """``{"a.b": 2}`` or ``["a.b=2"]`` -> ``("a.b=2",)`` (the `--set` syntax; docs/usage.md)."""
    if not overrides:
        return ()
    if isinstance(overrides, Mapping):
        return tuple(f"{k}={_value_text(v)}" for k, v in overrides.items())
    if isinstance(overrides, str):
        raise ConfigError("overrides are a mapping or a list of key=value texts", source="api.load",
                          value=overrides, expected='e.g. {"parallelism.micro_batch_size": 2}')
    return tuple(str(o) for o in overrides)


@dataclass(frozen=True)
class Setup:
    """A validated workload on a cluster: the raw inputs, the overrides on top, the Scenario."""

    inputs: Inputs
    overrides: tuple[str, ...] = ()
    gpus: int | None = None
    scenario: Scenario = field(default=None, repr=False, compare=False)   # type: ignore[assignment]

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def layout(self) -> str:
        return self.scenario.layout.describe()

    @property
    def assumptions(self) -> dict:
        """Every key left at its default (the values are filled in by ``simulate``)."""
        return dict(self.scenario.assumptions)

    def override(self, overrides: Overrides | None = None, gpus: int | None = None) -> "Setup":
        """A new Setup with more overrides (applied after the existing ones) and/or another GPU count."""
        texts = self.overrides + override_texts(overrides)
        gpus = self.gpus if gpus is None else gpus
        return replace(self, overrides=texts, gpus=gpus, scenario=_scenario(self.inputs, texts, gpus))


def _scenario(inputs: Inputs, overrides: tuple[str, ...], gpus: int | None) -> Scenario:
    return build_scenario(inputs.wraw, inputs.craw, workload_source=inputs.workload_source,
                          cluster_source=inputs.cluster_source, overrides=list(overrides), gpus=gpus)


def load(workload: str | Path | Mapping, cluster: str | Path | Mapping | None = None, *,
         overrides: Overrides | None = None, gpus: int | None = None) -> Setup:
    """Read and validate a workload and its cluster.

    ``workload``: a YAML file or a mapping shaped like one (docs/yaml.md). ``cluster``: a YAML file
    or a mapping; by default the workload's ``cluster:`` path (relative to the workload file, or to
    the current folder for a mapping). ``overrides``: ``{"key.path": value}`` or ``["key.path=value"]``.
    ``gpus``: the GPU count (as `--gpus`)."""
    if isinstance(workload, Mapping):
        wraw, wsource, base = dict(workload), "<workload mapping>", Path.cwd()
    else:
        wraw, wsource, base = read_yaml(Path(workload)), str(workload), Path(workload).parent
    if isinstance(cluster, Mapping):
        craw, csource = dict(cluster), "<cluster mapping>"
    else:
        if cluster is None:
            name = wraw.get("cluster") if isinstance(wraw, dict) else None
            if not name:
                raise ConfigError("no cluster given", source=wsource, path="cluster",
                                  expected="a `cluster:` path in the workload or load(..., cluster=...)")
            cluster = base / str(name)
        if not Path(cluster).exists():
            raise ConfigError("cluster file not found", source=wsource, path="cluster", value=str(cluster),
                              expected="an existing YAML file")
        craw, csource = read_yaml(Path(cluster)), str(cluster)
    from simulator.calibration.file import from_cluster

    inputs = Inputs(wraw, craw, wsource, csource, from_cluster(craw, csource))
    texts = override_texts(overrides)
    return Setup(inputs, texts, gpus, _scenario(inputs, texts, gpus))


@dataclass(frozen=True)
class Run:
    """One simulation: ``result`` is the library's Result (every field, the trace, the campaign)."""

    result: Result
    bands: dict = field(default_factory=dict)     # P10-P90 keys and `calibration`, as in `run --json`

    def to_dict(self) -> dict:
        return _finite({**self.result.to_json(), **self.bands})

    def records(self) -> list[dict]:
        return [self.to_dict()]

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), default=str, **kw)

    def __getitem__(self, key: str):
        return self.to_dict()[key]


def simulate(setup: Setup, *, fast: bool = False, replicas: int = 32, seed: int = 0,
             trace: bool = False) -> Run:
    """Simulate one setup: ``fast`` uses the closed-form step instead of the discrete-event one;
    ``replicas`` Monte Carlo campaign replicas from ``seed``; the efficiencies and band of the
    cluster's ``calibration:`` file when it names one (docs/calibration.md)."""
    from simulator.cost.efficiency import DEFAULT
    from simulator.simulate import simulate as run

    from simulator.calibration.bands import band_json, shipped_band_for
    from simulator.calibration.file import describe

    applied = setup.inputs.calibration
    if applied is not None:
        applied.check(setup.scenario, quiet=True)
    result = run(setup.scenario, engine="analytical" if fast else "des", replicas=replicas, seed=seed,
                 trace=trace, efficiency=DEFAULT if applied is None else applied.efficiencies())
    band = shipped_band_for(setup.scenario) if applied is None else applied.band
    return Run(result, {"calibration": describe(applied), **band_json(result, band)})


@dataclass(frozen=True)
class Rows:
    """A study's rows: one flat dict per case (the columns of `trainsim sweep --out`)."""

    rows: tuple[dict, ...]

    def records(self) -> list[dict]:
        return [_finite(dict(r)) for r in self.rows]

    def to_dict(self) -> dict:
        return {"rows": self.records()}

    def to_json(self, **kw) -> str:
        return json.dumps(self.records(), default=str, **kw)

    def column(self, key: str) -> list:
        return [r.get(key) for r in self.records()]

    def __len__(self) -> int:
        return len(self.rows)


def _options(fast: bool, replicas: int, seed: int) -> SimOptions:
    return SimOptions(engine="analytical" if fast else "des", replicas=replicas, seed=seed)


def _axes(grid: Mapping[str, Sequence], option: str):
    from simulator.explore.values import parse_axis

    return [parse_axis(f"{key}=" + ",".join(_value_text(v) for v in values), option) for key, values in grid.items()]


def _run(inputs, cases, fast, replicas, seed, workers) -> Rows:
    from simulator.explore.executors import executor_for
    from simulator.explore.sweep import run_cases

    with executor_for(workers) as ex:
        rows = run_cases(Study(tuple(inputs), _options(fast, replicas, seed)), cases, ex, progress=False)
    return Rows(tuple(rows))


def compare(setups: Setup | Sequence[Setup], vary: Mapping[str, Sequence] | None = None, *, fast: bool = False,
            replicas: int = 32, seed: int = 0, workers: int = 1) -> Rows:
    """Several setups side by side, or one setup with ``vary={"key": [v1, v2]}`` (cross product)."""
    from simulator.explore.cases import Case
    from simulator.explore.sweep import axis_cases

    if isinstance(setups, Setup):
        setups = [setups]
    setups = list(setups)
    if vary:
        if len(setups) != 1:
            raise ConfigError("vary compares variants of one setup", source="api.compare",
                              expected="one setup with vary, or several without")
        s = setups[0]
        inputs, cases = axis_cases(_axes(vary, "vary"), s.scenario, s.inputs, s.overrides, s.gpus, option="vary")
        return _run(inputs, cases, fast, replicas, seed, workers)
    if len(setups) < 2:
        raise ConfigError("nothing to compare", source="api.compare", expected="two or more setups, or one with vary")
    names: dict[str, int] = {}
    cases = []
    for i, s in enumerate(setups):
        names[s.name] = names.get(s.name, 0) + 1
        label = s.name if names[s.name] == 1 else f"{s.name} ({names[s.name]})"
        cases.append(Case(label, (("workload", s.inputs.workload_source),), source=i, overrides=s.overrides,
                          gpus=s.gpus))
    return _run([s.inputs for s in setups], cases, fast, replicas, seed, workers)


def sweep(setup: Setup, grid: Mapping[str, Sequence], *, fast: bool = False, replicas: int = 32, seed: int = 0,
          workers: int = 1) -> Rows:
    """Every combination of the ``grid`` values (the first key is the outermost loop)."""
    from simulator.explore.sweep import axis_cases

    inputs, cases = axis_cases(_axes(grid, "grid"), setup.scenario, setup.inputs, setup.overrides, setup.gpus,
                               option="grid")
    return _run(inputs, cases, fast, replicas, seed, workers)


@dataclass(frozen=True)
class SearchOutcome:
    """The layout search: ``best`` (its row, or None), ``rows`` re-simulated, ``data`` as `--json`."""

    data: dict
    best_overrides: tuple[str, ...] = ()

    @property
    def best(self) -> dict | None:
        return self.data.get("best")

    def records(self) -> list[dict]:
        return list(self.data["candidates"])

    def to_dict(self) -> dict:
        return self.data

    def to_json(self, **kw) -> str:
        return json.dumps(self.data, default=str, **kw)


def search(setup: Setup, *, gpus: int | None = None, objective: str = "time", confidence: str = "p50",
           top: int = 5, fast: bool = False, replicas: int = 32, seed: int = 0, workers: int = 1) -> SearchOutcome:
    """The best parallel layouts of ``setup`` on ``gpus`` GPUs (default: its own count) by
    ``objective`` (time, cost, energy, carbon); apply the winner with ``setup.override(outcome.best_overrides)``."""
    from simulator.explore.executors import executor_for
    from simulator.explore.handlers import kept_schedule, search_json
    from simulator.explore.layouts import Space
    from simulator.explore.search import SearchSettings, search as run_search

    if confidence not in CONFIDENCES:
        raise ConfigError("unknown confidence", source="api.search", value=confidence,
                          expected=", ".join(CONFIDENCES))
    settings = SearchSettings(gpus=gpus or setup.scenario.num_gpus, objective=objective, confidence=confidence,
                              top=top, space=Space(schedule=kept_schedule(setup.scenario)))
    with executor_for(workers) as ex:
        res = run_search(setup.inputs, setup.overrides, settings, ex, _options(fast, replicas, seed), progress=False)
    best = res.best_layout
    return SearchOutcome(_finite(search_json(res, setup.name)), tuple(best.overrides()) if best is not None else ())
