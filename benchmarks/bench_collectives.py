"""Wall time of costing collectives with fabric contention at 1K, 16K and 100K GPUs.

    python benchmarks/bench_collectives.py

For each scale: build the per-tier view of a DGX H100 SuperPOD-style fabric (switch radix 128 so
100K GPUs fit in three tiers), then cost the data-parallel all-reduce, reduce-scatter, a TP
all-reduce and an EP all-to-all with every group of the kind active at once. The symmetric
per-tier model makes this O(tiers), independent of the GPU count.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout, not an installed copy

from simulator import load_scenario  # noqa: E402
from simulator.cost import comm  # noqa: E402
from simulator.cost.efficiency import DEFAULT  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCALES = [1024, 16384, 98304]


def cost_once(gpus: int) -> float:
    s = load_scenario(ROOT / "workloads" / "llama3-8b.yaml", gpus=gpus,
                      overrides=["parallelism.tensor_model_parallel_size=8", f"training.global_batch_size={gpus // 8}",
                                 f"cluster.num_nodes={gpus // 8}", "cluster.fabric.switch_radix=128"])
    t0 = time.perf_counter()
    tiers = comm.tiers_of(s.cluster, s.gpu, DEFAULT, gpus)
    dp = comm.Group(gpus // 8, 8)
    total = (comm.all_reduce(dp, 2e9, tiers) + comm.reduce_scatter(dp, 2e9, tiers)
             + comm.all_reduce(comm.Group(8, 1), 64e6, tiers) + comm.all_to_all(comm.Group(64, 8), 1e8, tiers))
    elapsed = time.perf_counter() - t0
    assert total > 0
    return elapsed


def main() -> None:
    times = {}
    for gpus in SCALES:
        cost_once(gpus)   # warm imports
        times[gpus] = min(cost_once(gpus) for _ in range(20))
        print(f"{gpus:>7} GPUs: {times[gpus] * 1e3:7.3f} ms to cost 4 collectives (fabric view included)")
    print(f"ratio 16K/1K: {times[16384] / times[1024]:.2f}   ratio 100K/1K: {times[98304] / times[1024]:.2f}")


if __name__ == "__main__":
    main()
