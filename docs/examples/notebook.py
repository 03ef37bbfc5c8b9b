"""A notebook session with trainsim's Python API (docs/api.md). Run it from the repository root:

    python docs/examples/notebook.py

It loads a workload, changes a key, simulates, compares two micro-batch sizes, sweeps GPU counts,
searches a layout and prints JSON-ready records (the closed-form step keeps it quick).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))          # this checkout's simulator, even without `pip install -e .`

from simulator import api  # noqa: E402

# 1. a workload from YAML, with an override, and the same from plain dicts
setup = api.load(ROOT / "workloads/llama3-8b.yaml", overrides={"parallelism.micro_batch_size": 2})
print(setup.name, setup.layout, f"{len(setup.assumptions)} keys at their defaults")

import yaml  # noqa: E402  (only to show the dict form)

workload = yaml.safe_load((ROOT / "workloads/llama3-8b.yaml").read_text())
cluster = yaml.safe_load((ROOT / "topologies/dgx-h100-superpod.yaml").read_text())
from_dicts = api.load(workload, cluster, gpus=256)

# 2. one simulation: typed result, plain-dict and JSON forms
run = api.simulate(setup, fast=True, replicas=8)
print(f"step {run['step_time_s']:.3f} s, MFU {run['mfu']:.1%}, "
      f"{run['time_to_train_days_p50']:.1f} days P50, ${run['cost_usd'] / 1e6:.2f}M")

# 3. compare variants, sweep a grid
variants = api.compare(setup, vary={"parallelism.micro_batch_size": [1, 2]}, fast=True, replicas=4)
for row in variants.records():
    print(f"{row['case']:<24} {row['time_to_train_days_p50']:.2f} d  ${row['cost_usd']:,.0f}")
grid = api.sweep(from_dicts, {"num_gpus": [128, 256]}, fast=True, replicas=4)
print("sweep days:", [round(d, 1) for d in grid.column("time_to_train_days_p50")])

# 4. search the layout on 256 GPUs and apply the winner
found = api.search(from_dicts, objective="cost", top=2, fast=True, replicas=4)
print("best layout:", found.best["layout"], "overrides:", found.best_overrides)
tuned = from_dicts.override(found.best_overrides)
print("tuned:", tuned.layout)

# 5. everything is plain data
json.dumps({"run": run.to_dict(), "compare": variants.records(), "search": found.to_dict()})
print("ok")
