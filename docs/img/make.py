"""Regenerate the charts shown in the docs: `python docs/img/make.py` from the repository root.

Every image is a real trainsim run through the command line (closed-form step, few campaign
replicas, so the whole set takes about a minute); nothing here is drawn by hand.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from simulator.cli import main  # noqa: E402

IMG = Path(__file__).resolve().parent
W8, W70 = str(ROOT / "workloads/llama3-8b.yaml"), str(ROOT / "workloads/llama3-70b.yaml")
QUICK = ["--fast", "--replicas", "8", "--workers", "1", "--no-progress", "--json"]

RUNS = {
    "compare.png": ["compare", W8, "--vary", "parallelism.micro_batch_size=1,2,4", *QUICK],
    "sweep.png": ["sweep", W8, "--grid", "num_gpus=256,512,1024,2048", "--grid",
                  "parallelism.micro_batch_size=1,2", *QUICK],
    "search.png": ["search", W70, "--gpus", "1024", "--top", "4", *QUICK],
    "size.png": ["size", W70, "--deadline", "60d", "--budget", "$15M", *QUICK],
    "sensitivity.png": ["sensitivity", W8, *QUICK],
    "levers.png": ["levers", W8, "--fast", "--replicas", "8", "--json"],
    "topology.png": ["topology", str(ROOT / "topologies/dgx-h100-superpod.yaml"), "--json"],
}


def build(names=None) -> list[Path]:
    import contextlib
    import io

    out = []
    for name, argv in RUNS.items():
        if names and name not in names:
            continue
        flag = "--draw" if argv[0] == "topology" else "--plot"
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv + [flag, str(IMG / name)])
        if code != 0:
            raise SystemExit(f"{name}: trainsim {' '.join(argv)} exited {code}")
        out.append(IMG / name)
    if not names or "run" in names:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", W8, "--fast", "--replicas", "16", "--json", "--plot", str(IMG / "run")])
        if code != 0:
            raise SystemExit(f"run: exited {code}")
        out += sorted((IMG / "run").glob("*.png"))
    return out


if __name__ == "__main__":
    for p in build(sys.argv[1:] or None):
        print(p.relative_to(ROOT))
