"""Write a layout the search found as a workload YAML that `trainsim run` accepts as it is."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import yaml

from simulator.config.overrides import apply, parse_override
from simulator.config.scenario import load_scenario
from simulator.explore.cases import Inputs
from simulator.explore.layouts import Layout
from simulator.outputs import write_text


def layout_workload(inputs: Inputs, overrides: Sequence[str], layout: Layout, gpus: int, path: Path) -> dict:
    """The workload mapping with the user's workload overrides and the layout applied, and its
    ``cluster:`` path rewritten relative to where the new file will live."""
    texts = [t for t in overrides if not t.startswith("cluster.")] + list(layout.overrides())
    raw = apply(inputs.wraw, [parse_override(t) for t in texts], "search")
    raw["num_gpus"] = gpus
    par = raw.get("parallelism") or {}
    raw["parallelism"] = {k: v for k, v in par.items() if v is not None and k != "data_parallel_size"}
    cluster = Path(inputs.cluster_source).resolve()
    rel = os.path.relpath(cluster, path.resolve().parent)
    raw["cluster"] = rel if rel.count("..") <= 2 else str(cluster)
    order = ["name", "description", "cluster", "num_gpus", "model", "training", "parallelism", "checkpoint"]
    return {k: raw[k] for k in order if k in raw} | {k: v for k, v in raw.items() if k not in order}


def write_layout_yaml(inputs: Inputs, overrides: Sequence[str], layout: Layout, gpus: int, path: str | Path,
                      note: str = "") -> Path:
    """Write the workload and check that it loads (any problem is raised before returning)."""
    path = Path(path)
    data = layout_workload(inputs, overrides, layout, gpus, path)
    cluster_sets = [t for t in overrides if t.startswith("cluster.")]
    head = [f"# Written by `trainsim search` from {inputs.workload_source}: {layout.describe()} on {gpus} GPUs."]
    if note:
        head.append(f"# {note}")
    if cluster_sets:
        head.append("# The search also changed the cluster; run with: "
                    + " ".join(f"--set '{t}'" for t in cluster_sets))
    text = "\n".join(head) + "\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    write_text(path, text)
    load_scenario(path, overrides=cluster_sets)
    return path
