"""The measured-runs CSV of ``trainsim calibrate`` (docs/calibration.md).

One row per measured run. Columns:

- ``run``: a label (default ``row N``);
- ``workload``: a workload YAML file (relative to the CSV's folder, or a bundled name such as
  ``llama3-8b``); model and layout keys of the run are given on top of it;
- ``gpus``: the number of GPUs (default: the workload's ``num_gpus``);
- layout shorthands ``tp``, ``pp``, ``vpp``, ``cp``, ``ep``, ``dp``, ``micro_batch_size``,
  ``global_batch_size``, ``seq_length``; any other column whose name is a dotted key
  (``model.hidden_size``, ``parallelism.sequence_parallel``, ``training.precision`` ...) overrides
  that key as ``--set`` does. Empty cells leave the workload's value;
- ``metric``: ``step_time_s`` (seconds per optimizer step), ``tokens_per_s_per_gpu``
  (global batch x sequence / step time / GPUs) or ``mfu`` (model FLOPs per step, excluding
  recomputation, / (step time x GPUs x the GPU's dense BF16 peak), as ``trainsim run`` reports it,
  a fraction in (0, 1]);
- ``value``: the measured figure.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from simulator.config.scenario import Scenario, load_scenario
from simulator.cost.efficiency import DEFAULT, Efficiency
from simulator.cost.step import estimate_step
from simulator.errors import ConfigError, TrainsimError
from simulator.files import read_text
from simulator.limits import MAX_CSV_BYTES
from simulator.validation.runner import Row

# a measured figure this many times the shipped prediction (or its inverse) is a wrong unit or digit
# (ms for s, a percentage for a fraction), not a run a refit of bounded efficiencies could explain
MAX_OFF = 100.0

METRICS = ("step_time_s", "tokens_per_s_per_gpu", "mfu")
ALIASES = {
    "tp": "parallelism.tensor_model_parallel_size", "pp": "parallelism.pipeline_model_parallel_size",
    "vpp": "parallelism.virtual_pipeline_model_parallel_size", "cp": "parallelism.context_parallel_size",
    "ep": "parallelism.expert_model_parallel_size", "dp": "parallelism.data_parallel_size",
    "micro_batch_size": "parallelism.micro_batch_size", "global_batch_size": "training.global_batch_size",
    "seq_length": "model.seq_length",
}
PLAIN = {"run", "workload", "gpus", "metric", "value"}
BUNDLED = Path(__file__).resolve().parents[2] / "workloads"


def metric_of(metric: str, s: Scenario, step_time_s: float) -> float:
    """The measured figure a step time stands for (definitions in the module docstring)."""
    from simulator.model.arch import resolve
    from simulator.model.flops import model_flops_per_token

    if metric == "step_time_s":
        return step_time_s
    a = resolve(s.workload.model)
    tokens = s.workload.training.global_batch_size * a.seq
    if metric == "tokens_per_s_per_gpu":
        return tokens / (step_time_s * s.num_gpus)
    peak = s.gpu.peak("bf16") or s.gpu.peak(s.workload.training.precision)
    return model_flops_per_token(a) * tokens / (step_time_s * s.num_gpus * peak)


@dataclass
class Measured:
    """One measured run, its scenario built once; the same interface as validation.runner.Case."""

    row: dict          # run, source (= run), metric, value
    scenario: Scenario
    line: int          # CSV line number

    @property
    def source(self) -> str:
        return self.row["source"]

    def predict(self, eff: Efficiency = DEFAULT, engine: str = "analytical") -> Row:
        t = estimate_step(self.scenario, eff).step_time
        return Row(self.source, self.row["run"], self.scenario.num_gpus, self.row["metric"],
                   float(self.row["value"]), metric_of(self.row["metric"], self.scenario, t), t)


def _workload_path(text: str, folder: Path) -> Path:
    p = Path(text)
    for cand in (folder / p, p, BUNDLED / p, BUNDLED / f"{text}.yaml"):
        if cand.is_file():
            return cand
    return folder / p


def read_measured(path: str | Path, cluster: str | Path) -> list[Measured]:
    """Every row of the measured CSV as a scenario on ``cluster``; exit 2 naming row and column otherwise."""
    path = Path(path)
    text = read_text(path, MAX_CSV_BYTES, what="a CSV of measured runs (workload, metric, value, ...)")
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in (reader.fieldnames or [])]
    for need in ("workload", "metric", "value"):
        if need not in columns:
            raise ConfigError("missing column", source=str(path), path=need,
                              expected="columns workload, metric, value (and optional run, gpus, layout keys)")
    for n, col in enumerate(columns):
        if not col:
            raise ConfigError(f"column {n + 1} of the header has no name (a trailing comma?)", source=str(path),
                              path="header", expected="a name for every column, or no empty column")
        key = ALIASES.get(col, col)
        twin = next((c for c in columns[:n] if ALIASES.get(c, c) == key), None)
        if twin is not None:
            raise ConfigError("a column given twice" + (f" (as {twin} and {col})" if twin != col else ""),
                              source=str(path), path=col, expected="each column once")
        if col not in PLAIN and col not in ALIASES and "." not in col:
            raise ConfigError("unknown column", source=str(path), path=col,
                              expected="run, workload, gpus, metric, value, " + ", ".join(ALIASES)
                              + " or a dotted key such as model.hidden_size")
    out: list[Measured] = []
    for i, raw in enumerate(reader):
        line = reader.line_num   # the physical line (blank lines skipped, quoted newlines counted)
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        run = row.get("run") or f"row {i + 1}"
        where = f"{path}, line {line} ({run})"
        extra = [c for c in raw.get(None) or () if c.strip()]
        if extra:
            raise ConfigError(f"{len(columns) + len(raw[None])} cells but the header has {len(columns)} columns",
                              source=where, value=",".join(extra), expected="one cell per header column")
        metric = row["metric"]
        if metric not in METRICS:
            raise ConfigError("unknown metric", source=where, path="metric", value=metric,
                              expected=", ".join(METRICS))
        try:
            value = float(row["value"])
        except ValueError:
            raise ConfigError("not a number", source=where, path="value", value=row["value"],
                              expected="a positive measured figure") from None
        if not value > 0 or value == float("inf"):
            raise ConfigError("a measured figure must be positive and finite", source=where, path="value",
                              value=row["value"], expected=f"{metric} > 0")
        if metric == "mfu" and value > 1:
            raise ConfigError("MFU above 1 is physically impossible", source=where, path="value",
                              value=value, expected="a fraction in (0, 1] (45 % is 0.45)")
        gpus = None
        if row.get("gpus"):
            try:
                gpus = int(row["gpus"])
                assert gpus > 0
            except (ValueError, AssertionError):
                raise ConfigError("not a positive integer", source=where, path="gpus", value=row["gpus"]) from None
        overrides = [f"{ALIASES.get(k, k)}={v}" for k, v in row.items() if k not in PLAIN and v]
        wpath = _workload_path(row["workload"], path.parent)
        if not row["workload"] or not wpath.is_file():
            raise ConfigError("workload file not found", source=where, path="workload", value=row["workload"],
                              expected="a workload YAML (relative to the CSV) or a bundled name: "
                              + ", ".join(p.stem for p in sorted(BUNDLED.glob('*.yaml'))))
        try:
            s = load_scenario(wpath, cluster=cluster, overrides=overrides, gpus=gpus)
            predicted = metric_of(metric, s, estimate_step(s, DEFAULT).step_time)
        except TrainsimError as e:
            raise ConfigError(f"trainsim cannot simulate this run: {e}", source=where,
                              path="workload/layout columns") from None
        off = value / predicted if predicted > 0 else math.inf
        if not 1 / MAX_OFF <= off <= MAX_OFF:   # a unit or a digit wrong, not something a refit can fix
            raise ConfigError(f"the measured figure is {off:.3g}x the shipped prediction ({predicted:.4g})",
                              source=where, path="value", value=row["value"],
                              expected=f"a {metric} within {MAX_OFF:g}x of the prediction: check the metric "
                              "column and the figure's unit (docs/calibration.md)")
        out.append(Measured({"source": run, "run": run, "metric": metric, "value": row["value"]}, s, line))
    if len({m.row["run"] for m in out}) != len(out):
        raise ConfigError("two rows share a run label", source=str(path), path="run",
                          expected="a distinct label per row")
    return out
