"""`trainsim compare`: several workloads side by side, or one workload with `--vary key=v1,v2,...`."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from simulator.errors import ConfigError
from simulator.explore.cases import Case, Inputs, read_inputs
from simulator.explore.sweep import axis_cases
from simulator.explore.values import parse_axis


def workload_cases(paths: Sequence[str], cluster: str | None, overrides: Sequence[str],
                   gpus: int | None) -> tuple[tuple[Inputs, ...], list[Case]]:
    """One case per workload file (each validated first, so a bad file fails before any work)."""
    inputs, cases, labels = [], [], set()
    for i, path in enumerate(paths):
        inp, s = read_inputs(path, cluster, list(overrides), gpus)
        label = s.name if s.name not in labels else f"{s.name} ({Path(path).name})"
        if label in labels:   # the same file (or file name) again: numbered by position
            label = f"{s.name} (#{i + 1}, {Path(path).name})"
        labels.add(label)
        inputs.append(inp)
        cases.append(Case(label, (("workload", str(path)),), source=i, overrides=tuple(overrides), gpus=gpus))
    return tuple(inputs), cases


def vary_cases(path: str, specs: Sequence[str], cluster: str | None, overrides: Sequence[str],
               gpus: int | None, calibration=None) -> tuple[tuple[Inputs, ...], list[Case]]:
    """One workload, the cross product of its --vary axes (``calibration``: --calibration's, the base
    of ``efficiency.*`` multipliers)."""
    inp, s = read_inputs(path, cluster, list(overrides), gpus)
    axes = [parse_axis(spec, "--vary") for spec in specs]
    return axis_cases(axes, s, inp, tuple(overrides), gpus, option="--vary", calibration=calibration)


def compare_cases(workloads: Sequence[str], vary: Sequence[str], cluster: str | None = None,
                  overrides: Sequence[str] = (), gpus: int | None = None,
                  calibration=None) -> tuple[tuple[Inputs, ...], list[Case]]:
    if vary and len(workloads) != 1:
        raise ConfigError("--vary compares variants of one workload", source="compare",
                          value=list(workloads), expected="one workload with --vary, or several without")
    if not vary and len(workloads) < 2:
        raise ConfigError("nothing to compare", source="compare", value=list(workloads),
                          expected="two or more workloads, or one with --vary key=v1,v2")
    if vary:
        return vary_cases(workloads[0], vary, cluster, overrides, gpus, calibration)
    return workload_cases(workloads, cluster, overrides, gpus)
