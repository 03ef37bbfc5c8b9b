"""Wall time of the step simulation (DES and closed form) for Llama-3-405B at growing GPU counts.

    python benchmarks/bench_iteration.py

The global batch is held at 16M tokens (2,048 x 8192) where it divides; at 1K GPUs (DP 8) each
replica runs 256 microbatches, at 16K (DP 128) 16. The DES simulates one replica, so its cost
follows the schedule's task count (stages x microbatches), not the GPU count.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout, not an installed copy

from simulator import load_scenario, simulate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = [  # (GPUs, global batch)
    (1024, 2048),
    (16384, 2048),
    (98304, 6144),   # DP 768: the batch grows to keep a whole number of microbatches per replica
]


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    rows = []
    for gpus, gbs in CASES:
        s = load_scenario(ROOT / "workloads" / "llama3-405b.yaml", gpus=gpus,
                          overrides=[f"training.global_batch_size={gbs}", "cluster.num_nodes=12288"])
        des = timed(lambda: simulate(s, engine="des", check_memory=False))
        cf = timed(lambda: simulate(s, engine="analytical", check_memory=False))
        r = simulate(s, check_memory=False)
        rows.append((gpus, s.layout.num_microbatches, des, cf, r.step_time_s))
        print(f"{gpus:>7} GPUs  {s.layout.describe():<22} m={s.layout.num_microbatches:<4} "
              f"DES {des * 1e3:8.1f} ms   closed form {cf * 1e3:6.1f} ms   step {r.step_time_s:.2f} s")
    base = rows[0][2]
    for gpus, _, des, _, _ in rows[1:]:
        print(f"DES time ratio {gpus} / {rows[0][0]} GPUs: {des / base:.2f}")


if __name__ == "__main__":
    main()
