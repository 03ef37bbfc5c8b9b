"""Studies of many cases: the cross product of axes (sweep, compare --vary), run through an executor,
streamed in order to a results file that an interrupted run can resume.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from concurrent.futures import Executor
from pathlib import Path
from typing import Sequence

from simulator.errors import ConfigError
from simulator.explore.cases import RESULT_COLUMNS, Case, Inputs, Study, evaluate_batch, with_cluster
from simulator.explore.executors import batch_size, map_ordered, timed, worker_count
from simulator.explore.progress import progress_bar
from simulator.explore.results import ResultsFile, check_columns, check_prefix, check_study, read_rows, write_study
from simulator.explore.values import Axis, Setting, multiplier, resolve


def _short(key: str) -> str:
    """``nic_bandwidth`` for cluster.node.nic_bandwidth; a key into a list keeps the list's name and
    the position (``phases.2.num_gpus``), which alone would read as the top-level key."""
    parts = key.split(".")
    at = [i for i, p in enumerate(parts) if p.isdigit() and i > 0]
    return ".".join(parts[at[-1] - 1:]) if at else parts[-1]


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """Each key's short name (``_short``), or the whole key where the short names clash."""
    last = [_short(k) for k in keys]
    return {k: (n if last.count(n) == 1 else k) for k, n in zip(keys, last)}


SMALL_STUDY = 8    # up to this many cases per worker, each case is its own task (no calibration)


def _label(combo: Sequence[Setting], names: dict[str, str]) -> str:
    return ", ".join(f"{names[s.key]}={s.label}" for s in combo) or "base"


def axis_cases(axes: Sequence[Axis], scenario, inputs: Inputs, base_overrides: Sequence[str] = (),
               gpus: int | None = None, option: str = "--grid",
               calibration=None) -> tuple[tuple[Inputs, ...], list[Case]]:
    """The cross product of ``axes`` (first axis outermost) as Cases, and the Inputs they refer to.

    Multipliers (``x2``) apply to ``scenario``'s values; a ``cluster`` axis adds one Inputs per file,
    and a multiplier of a ``cluster.*`` key then applies to the value in the case's cluster file.
    """
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise ConfigError("the same key is given twice", source=option, value=keys,
                          expected="each key in one --grid/--vary")
    settings = [resolve(a, scenario, option, base_efficiency(calibration, inputs)) for a in axes]
    names = short_names(keys)
    sources: list[Inputs] = [inputs]
    files: dict[str, int] = {}
    per_file: dict[str, list[list[Setting]]] = {}    # the axes resolved against each cluster file
    cases = []
    for index in itertools.product(*(range(len(a.values)) for a in axes)):
        combo = [axis[i] for axis, i in zip(settings, index)]
        file = next((s.cluster_file for s in combo if s.cluster_file is not None), None)
        source = 0
        if file is not None:
            if file not in files:
                files[file] = len(sources)
                sources.append(with_cluster(inputs, file))
                per_file[file] = _resolve_on(axes, scenario, sources[-1], base_overrides, option,
                                             base_efficiency(calibration, sources[-1]))
            source = files[file]
            combo = [axis[i] for axis, i in zip(per_file[file], index)]
        cases.append(Case(
            label=_label(combo, names), params=tuple((s.key, s.label) for s in combo), source=source,
            overrides=tuple(base_overrides) + tuple(s.override for s in combo if s.override),
            options=("--set",) * len(base_overrides) + (option,) * sum(1 for s in combo if s.override),
            gpus=None if "num_gpus" in keys else gpus,      # a num_gpus axis wins over --gpus
            efficiency=tuple(s.efficiency for s in combo if s.efficiency)))
    return tuple(sources), cases


def base_efficiency(calibration, inputs: Inputs):
    """The efficiencies multipliers of ``efficiency.*`` apply to: --calibration's (``calibration``),
    else those of the cluster's ``calibration:`` key, else None (the shipped ones)."""
    applied = calibration if calibration is not None else inputs.calibration
    return None if applied is None else applied.efficiencies()


def _resolve_on(axes: Sequence[Axis], scenario, inputs: Inputs, base_overrides: Sequence[str],
                option: str, efficiency=None) -> list[list[Setting]]:
    """The axes resolved with the cluster of ``inputs`` (with the ``cluster.*`` base overrides):
    multipliers of cluster keys scale that file's values, not the base scenario's."""
    if not any(a.key.startswith("cluster.") and any(multiplier(v) is not None for v in a.values) for a in axes):
        return [resolve(a, scenario, option, efficiency) for a in axes]
    from simulator.config.cluster import ClusterConfig
    from simulator.config.loader import validate
    from simulator.config.overrides import Override, parse_override

    cl_over = []
    for text in base_overrides:
        ov = parse_override(text)
        if ov.path[0] == "cluster" and len(ov.path) > 1:
            cl_over.append(Override(ov.path[1:], ov.value, ov.text))
    cluster = validate(ClusterConfig, inputs.craw, inputs.cluster_source, cl_over)
    return [resolve(a, dataclasses.replace(scenario, cluster=cluster), option, efficiency) for a in axes]


def columns_of(cases: Sequence[Case]) -> tuple[str, ...]:
    params = list(dict.fromkeys(k for c in cases for k, _ in c.params))
    return tuple(dict.fromkeys(("case", *params, *RESULT_COLUMNS)))


def study_record(study: Study, cases: Sequence[Case], meta: dict | None = None) -> dict:
    """What defines a study's rows: the simulation options, ``meta`` (the command's options, named
    in messages) and a fingerprint of the inputs' contents and of every case."""
    o = study.options
    content = {"inputs": [[i.wraw, i.craw] for i in study.inputs],
               "cases": [[c.label, list(c.overrides), c.gpus, [list(e) for e in c.efficiency], c.source]
                         for c in cases]}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode("utf-8")).hexdigest()
    return {"engine": o.engine, "replicas": o.replicas, "seed": o.seed, "campaign": o.campaign,
            **(meta or {}), "fingerprint": digest}


def run_cases(study: Study, cases: Sequence[Case], executor: Executor, *, out: str | Path | None = None,
              resume: bool = False, progress: bool = True, stop_after: int | None = None,
              label: str = "simulating", meta: dict | None = None) -> list[dict]:
    """Rows of every case, in order. With ``out``, each row is appended as soon as it and every row
    before it are done; ``resume`` keeps the rows already in ``out`` and runs only the rest, provided
    they were computed with the same options (study_record, kept in ``<out>.study.json``).
    ``stop_after`` ends the run after that many new rows (a deterministic stand-in for Ctrl-C)."""
    rows: list[dict] = []
    sink = None
    if out is not None:
        sink = ResultsFile(out, columns_of(cases))
        record = study_record(study, cases, meta)
        if resume and Path(out).exists():
            rows = read_rows(out, typed=RESULT_COLUMNS)
            check_columns(out, rows, sink.columns)
            check_prefix(rows, [c.label for c in cases], out)
            check_study(out, record)
        elif Path(out).exists():
            raise ConfigError("results file exists", source="--out", value=str(out),
                              expected="--resume to continue it, --force to overwrite it, or another name")
        else:
            write_study(out, record)
        sink.start(resume=resume)
    todo = list(cases[len(rows):])
    if stop_after is not None:
        todo = todo[:stop_after]
    workers = worker_count(executor)
    with progress_bar(len(cases), len(rows), label, enabled=progress) as advance:
        if not todo:
            return rows
        size = 1
        if len(todo) > SMALL_STUDY * workers:   # many cases: time one here to size the batches
            first, seconds = timed(evaluate_batch, study, todo[:1])
            for _ in _emit(first, sink, rows):
                advance(1)
            todo = todo[1:]
            size = batch_size(seconds, len(todo), workers)
        for row in map_ordered(executor, evaluate_batch, study, todo, size, advance):
            _emit([row], sink, rows)
    return rows

def _emit(new: list[dict], sink: ResultsFile | None, rows: list[dict]) -> list[dict]:
    for row in new:
        if sink is not None:
            sink.append(row)
        rows.append(row)
    return new
