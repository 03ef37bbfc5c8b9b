"""`trainsim calibrate MEASURED.csv --cluster C`: registered as a subcommand extension (cli.py)."""
from __future__ import annotations

import argparse
import json
import sys

from simulator.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="refit the global efficiencies to your measured runs (docs/calibration.md)")
    p.add_argument("measured", help="CSV of measured runs: workload, layout keys, gpus, metric, value")
    p.add_argument("--cluster", required=True, help="cluster YAML file the runs were measured on")
    p.add_argument("--out", help="calibration file to write (default calibration.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--params", metavar="NAMES",
                   help="comma-separated parameters to refit (default: every fitted parameter, held by the prior); "
                        "needs at least one row per parameter")
    p.add_argument("--check", metavar="CALIBRATION",
                   help="fit nothing: predict the measured runs with the shipped and with this file's "
                        "efficiencies and report both errors")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_calibrate)


def _names(text: str | None, rows: int) -> tuple[str, ...]:
    from simulator.cost.efficiency import FIT_BOUNDS

    if text is None:
        return tuple(FIT_BOUNDS)
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for n in names:
        if n not in FIT_BOUNDS:
            raise ConfigError("not a fitted parameter", source="--params", value=n, expected=", ".join(FIT_BOUNDS))
    if not names:
        raise ConfigError("no parameter named", source="--params", expected=", ".join(FIT_BOUNDS))
    if rows < len(names):
        raise ConfigError(f"too few rows for the parameters asked ({rows} rows, {len(names)} parameters)",
                          source="--params", value=text, expected=f"at most {rows} parameters, or more rows")
    return names


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from simulator.calibration import file
    from simulator.calibration.fit import calibrate
    from simulator.calibration.measured import read_measured
    from simulator.validation.runner import mape

    if args.check:
        return _check(args)
    from simulator.outputs import check_output

    args.out = args.out or "calibration.yaml"

    check_output(args.out, "--out", force=args.force)   # before any work: a file name, not overwritten
    rows = read_measured(args.measured, args.cluster)
    if len(rows) < 2:
        raise ConfigError(f"too few rows ({len(rows)}): leave-one-out needs at least 2 measured runs",
                          source=args.measured, path="rows", expected="2 or more rows")
    names = _names(args.params, len(rows))
    own = rows[0].scenario.cluster.calibration
    if own is not None:
        print(f"note: the cluster's calibration: {own} is not used; calibrate refits from the shipped values",
              file=sys.stderr)
    cal = calibrate(rows, names=names)
    mapping = file.to_mapping(cal, rows[0].scenario)
    file.write(mapping, args.out, args.force)
    report = {"out": args.out, "efficiency": mapping["efficiency"],
              "moved": {n: {"shipped": a, "calibrated": b} for n, (a, b) in cal.moved.items()},
              "at_bound": {n: {"value": v, "bound": side} for n, (v, side) in cal.at_bound.items()},
              "mape_before": mape(cal.before), "mape_in_sample": mape(cal.rows), "mape_loo": mape(cal.loo),
              "rows": [{"run": b.run, "metric": b.metric, "measured": b.published, "before": b.predicted,
                        "error_before": b.error, "in_sample": r.predicted, "error_in_sample": r.error,
                        "loo": l.predicted, "error_loo": l.error}
                       for b, r, l in zip(cal.before, cal.rows, cal.loo)]}
    for n, (v, side) in cal.at_bound.items():
        how = "moved to" if n in cal.moved else "stays at"
        print(f"warning: {n} = {v:.4g} {how} its {side} bound (FIT_BOUNDS, docs/model.md); the runs may "
              "need a mechanism the model lacks rather than a larger shift", file=sys.stderr)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{'run':<28} {'metric':<22} {'measured':>10} {'shipped':>9} {'err':>7} {'in-sample':>10} {'err':>7} "
          f"{'leave-1-out':>11} {'err':>7}")
    for r in report["rows"]:
        print(f"{r['run']:<28} {r['metric']:<22} {r['measured']:>10.4g} {r['before']:>9.4g} "
              f"{100 * r['error_before']:>+6.1f}% {r['in_sample']:>10.4g} {100 * r['error_in_sample']:>+6.1f}% "
              f"{r['loo']:>11.4g} {100 * r['error_loo']:>+6.1f}%")
    print(f"mean absolute error: shipped {100 * report['mape_before']:.1f} % -> calibrated "
          f"{100 * report['mape_in_sample']:.1f} % in sample, {100 * report['mape_loo']:.1f} % leave-one-out")
    if cal.moved:
        print("moved: " + ", ".join(f"{n} {a:.4g} -> {b:.4g}" for n, (a, b) in cal.moved.items()))
    else:
        print("moved: none (the shipped values already fit these runs)")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from simulator.calibration.file import from_option
    from simulator.calibration.measured import read_measured
    from simulator.cost.efficiency import DEFAULT
    from simulator.validation.runner import mape

    for flag, given in (("--out", args.out), ("--params", args.params), ("--force", args.force or None)):
        if given is not None:   # --check fits and writes nothing: a flag it would ignore is a mistake
            raise ConfigError("--check fits nothing and writes no file", source=flag, value=given,
                              expected=f"--check alone, or {flag} without --check")
    rows = read_measured(args.measured, args.cluster)
    applied = from_option(args.check, "--check")
    applied.check(rows[0].scenario)
    eff = applied.efficiencies()
    before, after = [c.predict(DEFAULT) for c in rows], [c.predict(eff) for c in rows]
    if args.json:
        print(json.dumps({"mape_shipped": mape(before), "mape_calibrated": mape(after),
                          "rows": [{"run": b.run, "measured": b.published, "shipped": b.predicted,
                                    "error_shipped": b.error, "calibrated": a.predicted, "error_calibrated": a.error}
                                   for b, a in zip(before, after)]}, indent=2))
        return 0
    print(f"{'run':<28} {'metric':<22} {'measured':>10} {'shipped':>9} {'err':>7} {'calibrated':>10} {'err':>7}")
    for b, a in zip(before, after):
        print(f"{b.run:<28} {b.metric:<22} {b.published:>10.4g} {b.predicted:>9.4g} {100 * b.error:>+6.1f}% "
              f"{a.predicted:>10.4g} {100 * a.error:>+6.1f}%")
    print(f"mean absolute error: shipped {100 * mape(before):.1f} % -> calibrated {100 * mape(after):.1f} %")
    return 0
