"""CLI commands for studies: compare, sweep, search, size, sensitivity (issue 8).

Parsing and printing only; the work is in the modules of simulator/explore, the tables and charts
in simulator/report. Each handler returns the exit code; ConfigError / InfeasibleError raised here
become exit 2 / 3 in simulator.cli.main.
"""
from __future__ import annotations

import argparse

from simulator.argtypes import non_negative_int as _non_negative_int
from simulator.argtypes import positive_int as _positive_int
from simulator.argtypes import replica_count as _replica_count
from simulator.argtypes import top_count as _top_count
from simulator.explore.confidences import CONFIDENCES


class _Handler:
    """The handler of a subcommand, imported when the command runs (not for --help)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, args):
        from simulator.explore import handlers

        return getattr(handlers, self.name)(args)


CONF_HELP = ("p10/p50/p90/mean: the failure simulation's spread around the model's central step time; "
             "band-p10/band-p90: the prediction band, the model's own out-of-sample error included")


def _common(p: argparse.ArgumentParser, gpus: bool = True, plot: str = "chart") -> None:
    """Options every study command shares."""
    p.add_argument("--cluster", help="cluster YAML file (default: the workload's `cluster:`)")
    if gpus:
        p.add_argument("--gpus", type=_positive_int, help="number of GPUs (overrides num_gpus)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key for every case (repeatable), as for `trainsim run`")
    p.add_argument("--json", action="store_true", help="print only JSON on stdout")
    p.add_argument("--fast", action="store_true", help="closed-form step instead of the step DES")
    p.add_argument("--replicas", type=_replica_count, default=32,
                   help="Monte Carlo replicas of each campaign (default 32)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seed of every case's campaign (default 0)")
    p.add_argument("--workers", type=_positive_int,
                   help="local worker processes (default: the number of CPUs; 1 runs in this process)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask cluster, e.g. tcp://head:8786 (needs the `dask` extra)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--plot", metavar="FILE", help=f"write the {plot} (PNG, or any format from the suffix)")
    p.add_argument("--calibration", metavar="FILE", help="efficiencies and error band from `trainsim calibrate` (docs/calibration.md); "
                        "wins over the cluster's `calibration:` key")
    p.add_argument("--report", metavar="FILE.html",
                   help="write a self-contained HTML report (chart, tables, inputs, assumptions, validation band)")
    p.add_argument("--force", action="store_true",
                   help="overwrite existing output files (--out, --plot, --write, --report)")


def _space_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search space (comma-separated values; default: every valid value)")
    for flag, what in (("--tp", "tensor parallel sizes"), ("--pp", "pipeline stages"),
                       ("--vpp", "virtual stages per pipeline stage (1: no interleaving)"),
                       ("--cp", "context parallel sizes"), ("--ep", "expert parallel sizes"),
                       ("--micro-batch", "micro batch sizes"), ("--zero", "ZeRO stages (0-3; 1 = distributed optimizer)")):
        g.add_argument(flag, metavar="N,N", help=what)
    g.add_argument("--recompute", metavar="KIND,KIND", help="recomputation: none, selective, full")


def register(sub) -> None:
    """Add compare, sweep, search, size and sensitivity to the `trainsim` parser."""
    cmp_ = sub.add_parser("compare", help="several workloads side by side, or one with --vary",
                          description="Compare workloads side by side, or variants of one workload.")
    cmp_.add_argument("workloads", nargs="+", metavar="WORKLOAD", help="workload YAML files")
    cmp_.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                      help="values of a key to compare (repeat for a cross product); xF multiplies the base value")
    _common(cmp_)
    cmp_.set_defaults(func=_Handler("compare"))

    sw = sub.add_parser("sweep", help="the cross product of --grid axes, streamed to a results file",
                        description="Simulate every combination of the --grid values.")
    sw.add_argument("workload", help="workload YAML file")
    sw.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                    help="an axis of the grid (repeatable; the first is the outermost loop)")
    sw.add_argument("--out", metavar="FILE", help="results file, .csv or .json, written row by row")
    sw.add_argument("--resume", action="store_true", help="keep the rows already in --out, run the rest")
    _common(sw)
    sw.set_defaults(func=_Handler("sweep"))

    se = sub.add_parser("search", help="the best parallel layouts on N GPUs, and their Pareto front",
                        description="Enumerate every valid parallel layout, rank with the closed form, "
                                    "re-simulate the best with the full engines.")
    se.add_argument("workload", help="workload YAML file")
    se.add_argument("--objective", choices=("time", "cost", "energy", "carbon"), default="time")
    se.add_argument("--confidence", choices=CONFIDENCES, default="p50", help="time to train at (default p50; " + CONF_HELP + ")")
    se.add_argument("--top", type=_top_count, default=5,
                    help="layouts re-simulated with the full engines, besides the closed-form front (default 5, at most 200)")
    se.add_argument("--write", metavar="FILE", help="write the best layout as a workload YAML")
    _common(se, plot="Pareto chart")
    _space_options(se)
    se.set_defaults(func=_Handler("search"))

    sz = sub.add_parser("size", help="the smallest GPU count meeting a deadline (or the fastest in a budget)",
                        description="Size the cluster: failures, restarts and checkpoints included.")
    sz.add_argument("workload", help="workload YAML file")
    sz.add_argument("--deadline", metavar="DURATION", help="e.g. 60d or '8 weeks' (a bare number is days)")
    sz.add_argument("--budget", metavar="USD", help="e.g. '$40M', '4e7 USD' (a bare number is USD)")
    sz.add_argument("--confidence", choices=CONFIDENCES, default="p50", help="meet the deadline at (default p50; " + CONF_HELP + ")")
    sz.add_argument("--max-gpus", type=_positive_int, help="largest count tried (default 8 x the cluster)")
    sz.add_argument("--counts", metavar="N,N", help="GPU counts to try instead of the layout's own")
    sz.add_argument("--search", action="store_true",
                    help="re-choose the layout at each count (closed-form search) instead of keeping the workload's")
    _common(sz, gpus=False, plot="time/cost curve")
    sz.set_defaults(func=_Handler("size"))

    sn = sub.add_parser("sensitivity", help="tornado chart of time and cost for ±X%% on key inputs",
                        description="Move each key input down and up by X% and report the change in "
                                    "time to train and cost.")
    sn.add_argument("workload", help="workload YAML file")
    sn.add_argument("--percent", type=float, default=20.0, help="the change, in %% (default 20)")
    sn.add_argument("--inputs", metavar="NAME,NAME",
                    help="nic, gemm, failures, checkpoint, pue, gpu_price, energy_price (default: all)")
    sn.add_argument("--add", action="append", default=[], metavar="KEY",
                    help="also move this numeric key (repeatable), e.g. cluster.reliability.restart_time")
    sn.add_argument("--confidence", choices=CONFIDENCES, default="p50", help="time to train at (default p50; " + CONF_HELP + ")")
    _common(sn, plot="tornado chart")
    sn.set_defaults(func=_Handler("sensitivity"))

