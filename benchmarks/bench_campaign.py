"""Campaign engine speed: one 54-day replica at 16,384 GPUs, and 1,000 replicas on 2 cores.

    python benchmarks/bench_campaign.py [--replicas 1000] [--workers 2]

Targets (issue 6): one replica < 1 s; 1,000 replicas < 10 s on 2 cores. Prints wall times; not a
test (timings depend on the machine).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout, not an installed copy

from simulator import load_scenario, simulate  # noqa: E402
from simulator.engine.campaign import campaign_params, run_campaign, run_replicas  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    s = load_scenario(ROOT / "workloads" / "llama3-405b.yaml")
    step = simulate(s).step_time_s
    window = 54 * DAY
    print(f"llama3-405b on {s.num_gpus} GPUs, step {step:.2f} s, cpus here: {os.cpu_count()}")
    cases = (("interval 1 h", ["checkpoint.interval=1 h"]), ("interval auto (YAML)", []))
    for label, overrides in cases:
        sc = load_scenario(ROOT / "workloads" / "llama3-405b.yaml", overrides=overrides)
        p = campaign_params(sc, step, horizon_s=window)
        run_replicas(p, 1, 0)                                   # warm imports and caches
        (one,), t1 = _timed(lambda: run_replicas(p, 1, 1, timeline=True))
        print(f"[{label}] one 54-day replica with timeline: {t1 * 1e3:.1f} ms "
              f"({sum(one.counts.values())} interruptions, {len(one.timeline)} timeline segments) "
              f"target < 1 s")
        _, tn1 = _timed(lambda: run_replicas(p, args.replicas, 0, timeline=False))
        print(f"[{label}] {args.replicas} replicas in-process: {tn1:.2f} s")
        with ProcessPoolExecutor(args.workers) as pool:
            list(pool.map(abs, range(args.workers)))            # start the workers first
            _, tn = _timed(lambda: run_campaign(sc, step, replicas=args.replicas, seed=0,
                                                executor=pool, horizon_s=window))
        print(f"[{label}] {args.replicas} replicas on {args.workers} processes: {tn:.2f} s "
              f"(target < 10 s)")
    res, tf = _timed(lambda: run_campaign(s, step, replicas=100, seed=0, timeline=False))
    print(f"full run to the end ({res.ideal_time_to_train_days:.0f} ideal days), 100 replicas "
          f"in-process: {tf:.2f} s")


if __name__ == "__main__":
    main()
