"""Step-simulation speed: the step DES and the closed form over the published Megatron runs, the
405B at 16K and 131,072 GPUs, and the start-up of the command line.

    python benchmarks/bench_step.py [--repeat 5] [--skip-startup]

Megatron set: every Narayanan et al. 2021 row of simulator/validation/data/iteration.csv (Tables 1
and 2), built as `trainsim validate` builds it. For each configuration the time is the best of
``--repeat`` runs of simulate(..., campaign=False) (costing included, memory check off), each from
cold caches (simulator.memo.clear_all before every run: nothing is reused from the previous run of
the same configuration); the figure is the median over configurations. Targets (issue 17): step DES <= 20 ms median, closed
form <= 1 ms, 405B at 131,072 GPUs <= 1 s, `trainsim --help` < 0.3 s. Prints times and ratios;
not a test (timings depend on the machine and its load).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import load_scenario, simulate  # noqa: E402
from simulator.errors import ConfigError  # noqa: E402
from simulator.memo import clear_all  # noqa: E402
from simulator.validation.runner import load_rows, scenario_of  # noqa: E402


from bench_iteration import timed as best_of  # noqa: E402 (best of `repeat` wall times)


def megatron(repeat: int) -> None:
    rows = [r for r in load_rows() if r["source"].startswith("narayanan")]
    des, cf = [], []
    print(f"Megatron set: {len(rows)} configurations (narayanan rows of iteration.csv)")
    for row in rows:
        s = scenario_of(row)
        simulate(s, check_memory=False, campaign=False)               # warm caches and imports
        d = best_of(lambda: (clear_all(), simulate(s, check_memory=False, campaign=False)), repeat)
        c = best_of(lambda: (clear_all(), simulate(s, check_memory=False, campaign=False, engine="analytical")),
                    repeat)
        des.append(d)
        cf.append(c)
        print(f"  {row['run']:<24} {s.layout.describe():<26} m={s.layout.num_microbatches:<5} "
              f"DES {d * 1e3:8.2f} ms   closed form {c * 1e3:6.3f} ms")
    md, mc = statistics.median(des), statistics.median(cf)
    print(f"step DES    median {md * 1e3:8.2f} ms  max {max(des) * 1e3:8.2f} ms  (target <= 20 ms median)")
    print(f"closed form median {mc * 1e3:8.3f} ms  max {max(cf) * 1e3:8.3f} ms  (target <= 1 ms)")
    print(f"DES / closed form median ratio: {md / mc:.1f}")


def llama405(repeat: int) -> None:
    # the top level's step alone (phases=null: simulate() would also step each training phase)
    for gpus, gbs, extra in ((16384, 2048, []),
                             (131072, 16384, ["cluster.num_nodes=16384", "cluster.fabric.switch_radix=128"])):
        try:
            s = load_scenario(ROOT / "workloads" / "llama3-405b.yaml", gpus=gpus,
                              overrides=[f"training.global_batch_size={gbs}", "phases=null", *extra])
        except ConfigError as exc:   # e.g. a training phase of the workload that this batch breaks
            print(f"llama3-405b {gpus:>7} GPUs: skipped ({str(exc)[:160]})")
            continue
        simulate(s, check_memory=False, campaign=False)
        d = best_of(lambda: (clear_all(), simulate(s, check_memory=False, campaign=False)), repeat)
        c = best_of(lambda: (clear_all(), simulate(s, check_memory=False, campaign=False, engine="analytical")),
                    repeat)
        print(f"llama3-405b {gpus:>7} GPUs {s.layout.describe():<24} m={s.layout.num_microbatches:<3} "
              f"DES {d * 1e3:8.1f} ms   closed form {c * 1e3:6.2f} ms"
              + ("   (target DES <= 1 s)" if gpus == 131072 else ""))


def startup(repeat: int) -> None:
    cmd = [sys.executable, "-m", "simulator", "--help"]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)
    t = best_of(lambda: subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True), repeat)
    base = best_of(lambda: subprocess.run([sys.executable, "-c", "pass"], capture_output=True, check=True),
                   repeat)
    print(f"trainsim --help: {t:.3f} s wall (python alone {base:.3f} s; target < 0.3 s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--skip-startup", action="store_true")
    args = ap.parse_args()
    if not args.skip_startup:
        startup(args.repeat)
    llama405(max(1, args.repeat // 2))
    megatron(args.repeat)


if __name__ == "__main__":
    main()
