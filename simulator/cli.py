"""The `trainsim` command line: parse arguments, call the library, print. No modelling here."""
from __future__ import annotations

import argparse
import errno
import json
import math
import os
import re
import signal
import sys
import traceback

from simulator.argtypes import non_negative_int, positive_int, replica_count  # noqa: F401 (re-exported)
from simulator.errors import ConfigError, TrainsimError, clip, short, visible  # noqa: F401

POOL_REPLICAS = 200   # `run` spreads this many campaign replicas or more over the CPUs by default


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit with 2 through our own message format."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        m = re.match(r"argument (--[\w-]+)(?:/[\w-]+)*: expected one argument", message)
        if m:   # e.g. --deadline -5d: argparse reads a value starting with '-' as an option
            message += f" (a value that starts with '-' is written {m[1]}=VALUE)"
        raise ConfigError(message, source="command line")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="trainsim", description="Predict what it costs to train a large model on a GPU cluster.")
    p.add_argument("--debug", action="store_true", help="show a traceback on internal errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    run = sub.add_parser("run", help="simulate one workload on one cluster")
    run.add_argument("workload", help="workload YAML file")
    run.add_argument("--cluster", help="cluster YAML file (default: the workload's `cluster:`)")
    run.add_argument("--gpus", type=positive_int, help="number of GPUs (overrides num_gpus)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a key, e.g. parallelism.micro_batch_size=2 or "
                          "cluster.node.nic_bandwidth='200 Gb/s' (repeatable)")
    run.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    run.add_argument("--fast", action="store_true",
                     help="closed-form estimate instead of the discrete-event step simulation")
    run.add_argument("--trace", metavar="FILE", help="write the simulated step as a Chrome trace (Perfetto)")
    run.add_argument("--replicas", type=replica_count, default=32,
                     help="Monte Carlo replicas of the training campaign (default 32)")
    run.add_argument("--seed", type=non_negative_int, default=0,
                     help="seed of the campaign's random streams (default 0)")
    run.add_argument("--workers", type=positive_int, default=None,
                     help="processes for the campaign replicas (default: the number of CPUs from "
                          f"{POOL_REPLICAS} replicas on, else 1: in this process)")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run the campaign replicas on a Dask cluster, e.g. tcp://head:8786")
    run.add_argument("--plot", metavar="DIR", help="write plots: campaign timeline, time-to-train "
                     "distribution, power over a step and over the campaign")
    run.add_argument("--calibration", metavar="FILE",
                     help="efficiencies and error band from `trainsim calibrate` (docs/calibration.md); "
                          "wins over the cluster's `calibration:` key")
    run.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report (charts, "
                     "tables, inputs, assumptions, validation band) to send to others")
    run.add_argument("--force", action="store_true", help="overwrite existing --trace / --plot / --report files")

    topo = sub.add_parser("topology", help="describe a cluster's fabric: counts, bisection, tiers")
    topo.add_argument("cluster", help="cluster YAML file")
    topo.add_argument("--json", action="store_true", help="print only the JSON report")
    topo.add_argument("--nodes", type=positive_int, help="describe a smaller build with this many nodes")
    topo.add_argument("--draw", metavar="FILE", help="draw the fabric (PNG, or any format from the suffix); big fabrics are drawn at a small size")
    topo.add_argument("--force", action="store_true", help="overwrite an existing --draw file")

    for register in _extensions():
        register(sub)

    val = sub.add_parser("validate", help="compare predictions with published training runs")
    val.add_argument("--json", action="store_true", help="print the table as JSON")
    val.add_argument("--fast", action="store_true",
                     help="closed-form tier for every prediction (the default; kept for old scripts)")
    val.add_argument("--des", action="store_true",
                     help="predict the in-sample rows with the step DES (slow); the leave-one-source-out "
                          "refits always use the closed form")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from simulator import load_scenario, simulate
    from simulator.report.summary import summary

    from simulator.report.html import check_report_path

    check_report_path(args.report, args.force)
    want_timeline = bool(args.plot or args.report)
    if args.fast and args.trace:
        raise ConfigError("--trace needs the discrete-event engine", source="command line",
                          value="--fast", expected="either --fast or --trace, not both")
    _check_run_outputs(args)
    scenario = load_scenario(args.workload, cluster=args.cluster, overrides=args.overrides, gpus=args.gpus)
    from simulator.calibration.bands import band_json, band_text, shipped_band_for
    from simulator.calibration.file import describe, resolve
    from simulator.cost.efficiency import DEFAULT

    applied = resolve(args.calibration, scenario)
    eff, band = (DEFAULT, shipped_band_for(scenario)) if applied is None else (applied.efficiencies(), applied.band)
    if args.workers is None:   # a pool pays for its start-up only with many replicas
        from simulator.explore.executors import default_workers

        args.workers = default_workers() if args.replicas >= POOL_REPLICAS else 1
    if args.workers > 1 or args.scheduler:
        from simulator.explore.executors import executor_for

        with executor_for(args.workers, args.scheduler) as pool:
            result = simulate(scenario, engine="analytical" if args.fast else "des", trace=bool(args.trace),
                              replicas=args.replicas, seed=args.seed, executor=pool, timeline=want_timeline,
                              efficiency=eff)
    else:
        result = simulate(scenario, engine="analytical" if args.fast else "des", trace=bool(args.trace),
                          replicas=args.replicas, seed=args.seed, timeline=want_timeline, efficiency=eff)
    bands = {"calibration": describe(applied), **band_json(result, band)}
    _check_finite({**result.to_json(), **bands})
    if args.trace:
        from simulator.report.trace import write_chrome_trace

        write_chrome_trace(result.trace, args.trace, {"workload": scenario.name, "layout": result.layout,
                                                      "step_time_s": result.step_time_s})
        print(f"wrote {args.trace} ({len(result.trace)} events; open it in https://ui.perfetto.dev)",
              file=sys.stderr)
    if args.plot:
        from simulator.metrics.power import power_model_of
        from simulator.report.plots import write_run_plots

        files = write_run_plots(result, power_model_of(scenario), args.plot)
        print(f"wrote {len(files)} plots to {args.plot}", file=sys.stderr)
    text = summary(result) + "\n" + band_text(result, bands)
    if args.report:
        from simulator.metrics.power import power_model_of
        from simulator.report import html
        from simulator.report.pages import run_page

        page = run_page(result, scenario, power_model_of(scenario), args.fast, args.replicas, text)
        print(f"wrote {html.write(page, args.report, args.force)}", file=sys.stderr)
    if args.json:
        print(json.dumps({**result.to_json(), **bands}, indent=2, default=str))
    else:
        print(text)
    return 0


def _nonfinite(value, path: str = "") -> str | None:
    """The key path of the first NaN or infinite number in a JSON-like result, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path or "(the result)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        found = _nonfinite(v, f"{path}.{k}" if path and isinstance(k, str) else f"{path}[{k}]" if path else str(k))
        if found:
            return found
    return None


def _check_finite(result: dict) -> None:
    """A run whose numbers overflowed (a cost over a near-zero amortization, a checkpoint over a
    near-zero bandwidth) is refused before anything is written, naming the first such number."""
    bad = _nonfinite(result)
    if bad:
        raise ConfigError(f"the result {bad} is not a finite number", source="the inputs",
                          expected="values within physical ranges (a near-zero time or bandwidth, or an "
                                   "enormous power, size or price, makes a result overflow)")


RUN_PLOTS = ("step_power.png", "campaign_timeline.png", "time_to_train.png", "campaign_power.png")


def _check_run_outputs(args: argparse.Namespace) -> None:
    """Before any work: --trace and --plot can be written (simulator.outputs)."""
    from simulator.outputs import check_distinct, check_folder, check_output

    if args.trace:
        check_output(args.trace, "--trace", args.force)
    plots = []
    if args.plot:
        folder = check_folder(args.plot, "--plot")
        plots = [folder / name for name in RUN_PLOTS]
        for path in plots:
            check_output(path, "--plot", args.force)
    check_distinct(("--trace", args.trace), ("--plot", plots), ("--report", args.report))


def _cmd_validate(args: argparse.Namespace) -> int:
    from simulator.validation.report import format_validation, validate
    from simulator.validation.runner import format_table

    if args.fast and args.des:
        raise ConfigError("choose one engine", source="command line", value="--fast --des",
                          expected="either --fast or --des")
    v = validate(engine="des" if args.des else "analytical")
    if args.json:
        print(json.dumps(v.to_json(), indent=2))
    else:
        print(format_validation(v))
        print("\nwhole runs, end to end from the bundled workload (step, campaign, energy):")
        print(format_table(v.whole))
    return 0


def _cmd_topology(args: argparse.Namespace) -> int:
    from simulator.report.topology_text import topology_text
    from simulator.report.topology_report import topology_report

    if args.draw:
        from simulator.explore.handlers import check_plot

        check_plot(args.draw, "--draw", args.force)   # a format matplotlib writes, never overwritten
    where = str(args.cluster) + (f" (with --nodes {args.nodes})" if args.nodes else "")
    try:
        report = topology_report(args.cluster, num_nodes=args.nodes)
    except ConfigError as exc:
        if exc.source:
            raise
        raise ConfigError(str(exc), source=where) from None   # a fabric the build refuses: name the file
    if args.draw:
        from simulator.report.topology_plot import draw_cluster

        nodes = draw_cluster(args.cluster, args.draw, args.nodes)
        print(f"wrote {args.draw} ({nodes} nodes drawn)", file=sys.stderr)
    print(json.dumps(report, indent=2, default=str) if args.json else topology_text(report))
    return 0


COMMANDS = {"run": _cmd_run, "validate": _cmd_validate, "topology": _cmd_topology}


def _extensions():
    """Subcommand modules: each exposes register(subparsers), which adds its parsers and sets
    ``func`` (a function of the parsed args returning an exit code) as their default."""
    from simulator.explore import commands as explore_commands
    from simulator.calibration import commands as calibration_commands
    from simulator.explore import lever_commands

    return [explore_commands.register, lever_commands.register, calibration_commands.register]


# options naming a file, folder or address: an empty value (--trace '') was taken for "not given"
NAMED_VALUES = ("trace", "scheduler", "plot", "report", "out", "draw", "calibration", "cluster", "resume")


def _refuse_empty(args: argparse.Namespace) -> None:
    for dest in NAMED_VALUES:
        value = getattr(args, dest, None)
        if isinstance(value, str) and not value.strip():
            raise ConfigError("is empty", source=f"--{dest}", value=value,
                              expected="a file name, folder or address (or leave the option out)")


def _robust_environment() -> None:
    """A terminal that cannot show ×, – or µ (PYTHONIOENCODING=ascii, a C locale) gets "?" rather than a
    crash; charts are only ever written to files, so a user's MPLBACKEND (an interactive or misspelt
    backend) is set aside for matplotlib's file renderer."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")
        except (AttributeError, ValueError, OSError):   # not a text stream (pytest's capture, a pipe object)
            pass
    os.environ["MPLBACKEND"] = "agg"


def _interrupted(signum, frame) -> None:
    """The first Ctrl-C: a KeyboardInterrupt, as by default (studies keep the rows written so far and
    stop their workers); any later one ends the process at once, even inside that cleanup (joining a
    process pool at exit once waited for ever)."""
    signal.signal(signal.SIGINT, _interrupted_again)
    raise KeyboardInterrupt


def _interrupted_again(signum, frame) -> None:
    try:
        sys.stderr.write("\ninterrupted again: stopping now\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(130)


def _install_interrupt_handler():
    """Set _interrupted for SIGINT where Python's default handler is set (the main thread of a CLI
    run); returns the previous handler to restore, or None."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            return signal.signal(signal.SIGINT, _interrupted)
    except ValueError:   # not the main thread
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    _robust_environment()
    previous = _install_interrupt_handler()
    try:
        return _main(argv, debug)
    finally:   # after an interrupt the second-Ctrl-C handler stays: the exit still joins workers
        if previous is not None and signal.getsignal(signal.SIGINT) is _interrupted:
            signal.signal(signal.SIGINT, previous)


def _main(argv: list[str] | None, debug: bool) -> int:
    try:
        args = build_parser().parse_args(argv)
        _refuse_empty(args)
        if getattr(args, "func", None) is not None:
            return args.func(args)
        return COMMANDS[args.command](args)
    except TrainsimError as exc:
        kind = "infeasible" if exc.exit_code == 3 else "error"
        print(f"{kind}: {visible(clip(str(exc), 20_000))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a file or a device that cannot be read or written: the input's fault
        if debug:
            traceback.print_exc()
        # output files are written through outputs.py, which names them; an unnamed write error is
        # the standard output (a full disk or device: `> /dev/full`)
        name = (f" {short(exc.filename)}:" if getattr(exc, "filename", None) else
                " standard output:" if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EIO) else "")
        print(visible(f"error:{name} {clip(exc.strerror or str(exc))}"), file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: say so without a traceback unless asked
        if debug:
            traceback.print_exc()
        print(visible(f"internal error (a bug in trainsim, please report it): {type(exc).__name__}: {exc}"
                      " (rerun with --debug for the traceback)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
