"""Campaign engine speed: one 54-day replica at 16,384 GPUs, 1,000 replicas on 2 cores, and the
whole run from the command line.

    python benchmarks/bench_campaign.py [--replicas 1000] [--workers 2] [--skip-cli]

Targets (issues 6 and 17): one replica < 1 s; 1,000 replicas < 10 s on 2 cores, also from the
command line with start-up (`python -m simulator run workloads/llama3-405b.yaml --replicas 1000`,
whole runs to the end, workers defaulting to the CPUs). Prints wall times, CPU times and ratios;
not a test (timings depend on the machine and its load, printed with them).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
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
    ap.add_argument("--skip-cli", action="store_true")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if not args.skip_cli:
        cli(args.replicas)

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


def cli(replicas: int) -> None:
    """The whole campaign of the bundled 405B workload from the command line, start-up included."""
    for extra in ([], ["--workers", "1"]):
        cmd = [sys.executable, "-m", "simulator", "run", "workloads/llama3-405b.yaml", "--replicas",
               str(replicas), "--json", *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print(f"`trainsim run llama3-405b.yaml --replicas {replicas} {' '.join(extra) or '(default workers)'}`: "
              f"{wall:.2f} s wall, {cpu:.2f} s CPU (cpu/wall {cpu / wall:.2f}; target < 10 s wall)")


if __name__ == "__main__":
    main()
