from __future__ import annotations

from pathlib import Path

import pytest

from simulator import load_scenario

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ROOT / "workloads"
TOPOLOGIES = ROOT / "topologies"
BUNDLED = sorted(p.stem for p in WORKLOADS.glob("*.yaml"))
R = "cluster.reliability."
# overrides that switch off every failure class, planned stop and straggler of a cluster
NO_FAILURES = [R + k + "=0" for k in (
    "gpu_failures_per_gpu_hour", "host_failures_per_node_hour", "network_failures_per_node_hour",
    "software_failures_per_node_hour", "planned_maintenance_per_node_hour",
    "straggler_rate_per_node_hour")]


@pytest.fixture(scope="session")
def scenario():
    def make(name: str, *overrides: str, gpus: int | None = None, cluster: str | None = None):
        return load_scenario(WORKLOADS / f"{name}.yaml", overrides=list(overrides), gpus=gpus,
                             cluster=(TOPOLOGIES / f"{cluster}.yaml") if cluster else None)
    return make
