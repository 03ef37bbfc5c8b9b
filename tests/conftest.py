from __future__ import annotations

from pathlib import Path

import pytest

from simulator import load_scenario

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ROOT / "workloads"
TOPOLOGIES = ROOT / "topologies"
BUNDLED = sorted(p.stem for p in WORKLOADS.glob("*.yaml"))


@pytest.fixture(scope="session")
def scenario():
    def make(name: str, *overrides: str, gpus: int | None = None, cluster: str | None = None):
        return load_scenario(WORKLOADS / f"{name}.yaml", overrides=list(overrides), gpus=gpus,
                             cluster=(TOPOLOGIES / f"{cluster}.yaml") if cluster else None)
    return make
