"""Layout search speed: the full search of Llama-3-405B on 16,384 H100s.

    python benchmarks/bench_search.py [--workers 2] [--top 5] [--replicas 32] [--fast] [--size]

Targets (issues 8 and 17): under 30 s on 2 cores, from the workload file to the ranked,
re-simulated layouts (enumeration, validity and memory checks, closed-form ranking, then the step
DES and 32-replica campaign of the shortlist). ``--size`` also times
`trainsim size workloads/llama3-405b.yaml --deadline 60d --search` (a layout search at each of 31
GPU counts up to 131,072; target < 120 s). Prints wall times per phase and the load; not a test
(timings depend on the machine).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # this checkout, not an installed copy

from simulator.explore.cases import SimOptions, read_inputs  # noqa: E402
from simulator.explore.executors import executor_for  # noqa: E402
from simulator.explore.ranking import SearchTask  # noqa: E402
from simulator.explore.search import SearchSettings, rank_all, search, top_level_only  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=32)
    ap.add_argument("--fast", action="store_true", help="re-simulate with the closed form, not the step DES")
    ap.add_argument("--size", action="store_true", help="also time `size --search` (minutes)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    t0 = time.perf_counter()
    inp, s = read_inputs(ROOT / "workloads" / "llama3-405b.yaml")
    settings = SearchSettings(gpus=16384, top=args.top)
    opts = SimOptions(engine="analytical" if args.fast else "des", replicas=args.replicas)
    print(f"llama3-405b on 16384 x {s.gpu.name}, {args.workers} workers (cpus here: {os.cpu_count()})")
    with executor_for(args.workers) as ex:
        res = search(inp, (), settings, ex, opts, progress=False)
    total = time.perf_counter() - t0
    best = res.rows[res.best]
    print(f"full search: {total:6.2f} s  (target < 30 s on 2 cores; from the YAML, pool start-up included)")
    print(f"  {res.shapes:,} shapes, {res.layouts:,} layouts, {len(res.ranked):,} fit; "
          f"{len(res.rows)} re-simulated with {opts.engine}, {args.replicas} replicas")
    print(f"  best: {res.best_layout.describe()}  step {best['step_time_s']:.2f} s, "
          f"P50 {best['time_to_train_days_p50']:.1f} d")
    with executor_for(args.workers) as ex:
        t1 = time.perf_counter()
        shapes, _, _, _ = rank_all(SearchTask(inp, top_level_only(inp), 16384, settings.space), ex,
                                   progress=False)
        rank_s = time.perf_counter() - t1
    print(f"  of which enumerate + check + closed-form rank: {rank_s:6.2f} s "
          f"({rank_s / max(shapes, 1) * 1e3:.2f} ms per shape); re-simulation: ~{total - rank_s:.2f} s")
    if args.size:
        size_search(args.workers)


def size_search(workers: int) -> None:
    cmd = [sys.executable, "-m", "simulator", "size", "workloads/llama3-405b.yaml", "--deadline", "60d",
           "--search", "--json", "--no-progress", "--workers", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - t
    if done.returncode not in (0, 4):   # 4: no count meets the deadline, an answer (the closest is printed)
        raise SystemExit(f"size --search failed (exit {done.returncode}): {done.stderr.decode()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"size --search (405B, deadline 60 d, {workers} workers): {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"(target < 120 s wall on 2 cores)")


if __name__ == "__main__":
    main()
