"""Prediction bands: P10-P90 of a prediction from the model's own out-of-sample errors.

A residual is the ratio of the measured step time to the predicted one for a row the parameters
were not fitted on (leave-one-source-out on the shipped validation set, or leave-one-out on a
user's calibration rows). Every shipped metric is a step time or inversely proportional to one
(tokens/s, TFLOP/s, MFU at fixed FLOPs per step), so the ratio is metric-free.

Band of the step time: central value x the 10th and 90th percentiles of the ratios. Tokens/s and
MFU are inversely proportional to the step time, so their bands are the central value divided by
the 90th and 10th percentiles. Time to train, energy and dollars: the model's error and the
campaign's Monte Carlo spread are taken as independent and multiplied: every pair (campaign
replica i, residual j) gives T_i x r_j, and the band is the P10-P90 of those products; energy and
dollars scale with the same factor as the wall time (E x T_i r_j / mean T), an approximation
that holds while the cluster's power is roughly the same per unit of wall time.

    python -m simulator.calibration.bands     # regenerates data/loso_residuals.csv
"""
from __future__ import annotations

import csv
import sys
from importlib import resources

import numpy as np

SHIPPED = "data/loso_residuals.csv"


def ratio(metric: str, published: float, predicted: float) -> float:
    """Measured step time / predicted step time for a row of ``metric``."""
    return published / predicted if metric == "step_time_s" else predicted / published


def shipped_ratios() -> list[dict]:
    """The shipped leave-one-source-out residuals: source, run, ratio."""
    text = resources.files("simulator.calibration").joinpath(SHIPPED).read_text(encoding="utf-8")
    return [{"source": r["source"], "run": r["run"], "ratio": float(r["ratio"])}
            for r in csv.DictReader(text.splitlines())]


def quantiles(ratios) -> tuple[float, float]:
    r = np.asarray(list(ratios), dtype=float)
    lo, hi = np.percentile(r, [10, 90])
    return float(lo), float(hi)


def band_json(result, ratios, origin: str) -> dict:
    """The *_p10 / *_p90 keys of a run's JSON for the residual ``ratios`` (the central keys untouched)."""
    r = np.asarray(list(ratios), dtype=float)
    lo, hi = quantiles(r)
    out = {
        "step_time_s_p10": result.step_time_s * lo, "step_time_s_p90": result.step_time_s * hi,
        "tokens_per_s_p10": result.tokens_per_s / hi, "tokens_per_s_p90": result.tokens_per_s / lo,
        "mfu_p10": result.mfu / hi, "mfu_p90": result.mfu / lo,
    }
    c = result.campaign
    samples = np.asarray(getattr(c, "time_to_train_days_samples", ()) or (), dtype=float)
    samples = samples[np.isfinite(samples)]
    if c is not None and len(samples):
        prod = np.outer(samples, r).ravel()
        t10, t90 = np.percentile(prod, [10, 90])
        out["time_to_train_days_band_p10"], out["time_to_train_days_band_p90"] = float(t10), float(t90)
        e = result.energy
        if e is not None:
            mean = float(samples.mean())
            out["energy_mwh_p10"] = e.energy_j / 3.6e9 * t10 / mean
            out["energy_mwh_p90"] = e.energy_j / 3.6e9 * t90 / mean
            out["cost_usd_p10"] = e.cost_usd * t10 / mean
            out["cost_usd_p90"] = e.cost_usd * t90 / mean
    out["band"] = {"method": "P10-P90 of out-of-sample step-time ratios x campaign Monte Carlo",
                   "residuals": origin, "rows": int(len(r)), "ratio_p10": lo, "ratio_p90": hi}
    return out


def band_text(result, bands: dict) -> str:
    from simulator.units import fmt_duration, fmt_si

    b = bands
    parts = [f"step time {fmt_duration(result.step_time_s)} (P10–P90 {fmt_duration(b['step_time_s_p10'])}–"
             f"{fmt_duration(b['step_time_s_p90'])})",
             f"tokens/s {fmt_si(result.tokens_per_s)} ({fmt_si(b['tokens_per_s_p10'])}–{fmt_si(b['tokens_per_s_p90'])})",
             f"MFU {100 * result.mfu:.1f} % ({100 * b['mfu_p10']:.1f}–{100 * b['mfu_p90']:.1f} %)"]
    if "time_to_train_days_band_p10" in b:
        parts.append(f"time to train P10–P90 {b['time_to_train_days_band_p10']:.1f}–"
                     f"{b['time_to_train_days_band_p90']:.1f} d")
    if "energy_mwh_p10" in b:
        parts.append(f"energy {b['energy_mwh_p10']:,.0f}–{b['energy_mwh_p90']:,.0f} MWh")
        parts.append(f"$ {fmt_si(b['cost_usd_p10'])}–{fmt_si(b['cost_usd_p90'])}")
    return (f"prediction band  " + " · ".join(parts)
            + f"\n                 (model error from {b['band']['residuals']}, {b['band']['rows']} rows, "
              "with the campaign's spread)")


def main() -> None:
    from simulator.validation.fit import leave_one_source_out
    from simulator.validation.runner import cases

    ok, _ = cases()
    held = leave_one_source_out(ok, progress=lambda i, n: print(f"  {i}/{n}", file=sys.stderr))
    path = resources.files("simulator.calibration").joinpath(SHIPPED)
    with open(str(path), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "run", "metric", "published", "predicted", "ratio"])
        for h in held:
            for r in h.rows:
                w.writerow([r.source, r.run, r.metric, r.published, f"{r.predicted:.6g}",
                            f"{ratio(r.metric, r.published, r.predicted):.6f}"])
    print(f"wrote {path}", file=sys.stderr)


def for_run(calibration: str | None, scenario):
    """(efficiencies, residual ratios, where they come from) for a run with or without --calibration."""
    from simulator.cost.efficiency import DEFAULT

    if calibration is None:
        return DEFAULT, [r["ratio"] for r in shipped_ratios()], "the shipped validation, leave-one-source-out"
    from simulator.calibration.file import efficiency_for

    eff, ratios = efficiency_for(calibration, scenario)
    return eff, ratios, f"{calibration}, leave-one-out"


if __name__ == "__main__":
    main()
