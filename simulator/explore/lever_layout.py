"""A parallel layout for a resized model (a lever that changes the architecture).

A model-changing lever (a 10x smaller model, say) would be mispriced on the workload's own layout,
so it takes the fastest layout (closed-form step time) among the workload's own one, when still valid
and fitting, and a small grid: tensor parallelism within a node, pipeline stages dividing the layers,
1F1B, the distributed optimizer, and the least recomputation that fits. The baseline keeps its layout
as written. This is a deliberately small search, not `trainsim search`.
"""
from __future__ import annotations

from pathlib import Path

from simulator.config.scenario import Scenario, load_scenario
from simulator.cost.step import estimate_step
from simulator.errors import ConfigError, InfeasibleError
from simulator.simulate import memory_of

RECOMPUTE = ("none", "selective", "full")


def _load(workload: Path, cluster: Path | None, gpus: int | None, overrides: list[str]) -> Scenario | None:
    try:
        return load_scenario(workload, cluster=cluster, overrides=overrides, gpus=gpus)
    except ConfigError:
        return None


def _fits(s: Scenario) -> bool:
    return memory_of(s).total <= s.gpu.usable_hbm


def layout_overrides(tp: int, pp: int, recompute: str) -> list[str]:
    """``--set`` strings for a plain 1F1B layout with the distributed optimizer."""
    p = "parallelism."
    return [f"{p}tensor_model_parallel_size={tp}", f"{p}pipeline_model_parallel_size={pp}",
            f"{p}virtual_pipeline_model_parallel_size=null", f"{p}pipeline_schedule=null",
            f"{p}decoder_first_pipeline_num_layers=null", f"{p}decoder_last_pipeline_num_layers=null",
            f"{p}pipeline_model_parallel_layout=null",
            f"{p}sequence_parallel={'true' if tp > 1 else 'false'}", f"{p}recompute_granularity={recompute}",
            f"{p}data_parallel_size=auto", f"{p}zero_stage=null", f"{p}distributed_optimizer=true",
            f"{p}reshard_after_forward=true", f"{p}data_parallel_shard_degree=null",
            f"{p}recompute_method=null", f"{p}recompute_num_layers=null", f"{p}recompute_matmuls=none",
            f"{p}cpu_offloading=false",
            f"{p}cpu_offloading_num_layers=0",
            *([] if recompute == "selective" else [f"{p}recompute_modules=null"])]


def fit_layout(workload: Path, cluster: Path | None, gpus: int | None, overrides: list[str],
               gpus_per_node: int, num_layers: int) -> list[str]:
    """Extra overrides giving ``overrides`` (a resized model) the fastest valid layout that fits.

    [] when the workload's own layout is the fastest; InfeasibleError when nothing fits.
    """
    own = _load(workload, cluster, gpus, overrides)
    best: tuple[float, list[str]] | None = None
    if own is not None and _fits(own):
        best = (estimate_step(own).step_time, [])
    tps = [t for t in (1, 2, 4, 8, 16) if t <= gpus_per_node]
    pps = [p for p in range(1, min(num_layers, 64) + 1) if num_layers % p == 0]
    for tp in tps:
        for pp in pps:
            for rec in RECOMPUTE:
                extra = layout_overrides(tp, pp, rec)
                s = _load(workload, cluster, gpus, overrides + extra)
                if s is None:
                    break          # tp or pp does not divide: no recompute setting helps
                if not _fits(s):
                    continue
                t = estimate_step(s).step_time
                if best is None or t < best[0]:
                    best = (t, extra)
                break              # less recomputation is faster: stop at the first that fits
    if best is None:
        raise InfeasibleError("no layout on the lever's grid (TP within a node, PP dividing the layers, "
                              "recomputation) fits the resized model in memory")
    return best[1]
