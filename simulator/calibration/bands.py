"""Prediction bands: P10-P90 of a prediction from the model's own out-of-sample errors.

A residual is the ratio of the measured step time to the predicted one for a row the parameters
were not fitted on (leave-one-source-out on the shipped validation set, or leave-one-out on a
user's calibration rows). Every shipped metric is a step time or inversely proportional to one
(tokens/s, TFLOP/s, MFU at fixed FLOPs per step), so the ratio is metric-free.

The band is a prediction interval for the log-ratio of a row from a source not in the residuals
(docs/calibration.md, "How the band is made"): a one-way random-effects model, source as the
group, log r = mu + b_source + e_row. With k >= 2 sources: mu = mean of the source means,
s_b^2 = variance of the source means (ddof 1), s_e^2 = pooled within-source variance, and the
new row's spread is sd = sqrt(s_b^2 (1 + 1/k) + s_e^2), with a Student-t quantile on k - 1
degrees of freedom (the source means are what pins mu and s_b down, and there are few of them).
With one group (a user's calibration: one cluster, one stack) it is the textbook interval of a
new observation: mean +- t(n - 1) x sd x sqrt(1 + 1/n). P10/P90 of the ratio: exp(mu -+ t sd).

Step time: central x the ratio's P10 and P90. Tokens/s and MFU are inversely proportional to the
step time, so their band is central / P90 ... central / P10. Time to train, energy and dollars:
the model error and the campaign's Monte Carlo spread are independent; every pair (campaign
replica i, model-error quantile j) gives T_i x r_j, r_j = exp(mu + sd t^-1((j + 1/2) / M)) on M
evenly spaced probabilities, and the band is the P10-P90 of those products; energy and dollars
scale with the same factor as the wall time (E x T_i r_j / mean T).

    python -m simulator.calibration.bands              # regenerates data/loso_residuals.csv
    python -m simulator.calibration.bands --coverage   # nested leave-one-source-out coverage
"""
from __future__ import annotations

import csv
import functools
import math
import sys
from dataclasses import dataclass
from importlib import resources

import numpy as np

SHIPPED = "data/loso_residuals.csv"
LEVEL = 0.9           # P90 (and P10 = 1 - LEVEL)
DRAWS = 199           # model-error quantiles combined with the campaign's replicas
BAND_KEYS = ("step_time_s_p10", "step_time_s_p90", "tokens_per_s_p10", "tokens_per_s_p90", "mfu_p10", "mfu_p90",
             "time_to_train_days_band_p10", "time_to_train_days_band_p90", "energy_mwh_p10", "energy_mwh_p90",
             "cost_usd_p10", "cost_usd_p90")


def ratio(metric: str, published: float, predicted: float) -> float:
    """Measured step time / predicted step time for a row of ``metric``."""
    return published / predicted if metric == "step_time_s" else predicted / published


def shipped_ratios() -> list[dict]:
    """The shipped leave-one-source-out residuals: source, run, ratio, moe (a mixture-of-experts row)."""
    text = resources.files("simulator.calibration").joinpath(SHIPPED).read_text(encoding="utf-8")
    return [{"source": r["source"], "run": r["run"], "ratio": float(r["ratio"]), "moe": r.get("moe") == "1"}
            for r in csv.DictReader(text.splitlines())]


@functools.lru_cache(maxsize=64)
def t_quantile(p: float, dof: int) -> float:
    """Student-t quantile (numpy only: the CDF integrated on a fine grid, then interpolated)."""
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    x, cdf = _t_cdf(dof)
    return float(np.interp(p, cdf, x))


@functools.lru_cache(maxsize=16)
def _t_cdf(dof: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid and the Student-t CDF on it (computed once per dof: a band's draws ask for 200
    quantiles of one distribution)."""
    x = np.linspace(0.0, 60.0, 240_001)
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    pdf = np.exp(log_c - (dof + 1) / 2 * np.log1p(x * x / dof))
    cdf = 0.5 + np.concatenate(([0.0], np.cumsum((pdf[1:] + pdf[:-1]) / 2 * np.diff(x))))
    x.flags.writeable = cdf.flags.writeable = False
    return x, cdf


@dataclass(frozen=True)
class Band:
    """The predictive distribution of the log step-time ratio: exp(mu + sd x t(dof))."""

    mu: float
    sd: float
    dof: int
    rows: int
    groups: int
    origin: str

    @property
    def lo(self) -> float:
        return self.at(1.0 - LEVEL)

    @property
    def hi(self) -> float:
        return self.at(LEVEL)

    def at(self, p: float) -> float:
        return math.exp(self.mu + self.sd * t_quantile(p, self.dof))

    def draws(self, m: int = DRAWS) -> np.ndarray:
        """``[self.at((j + 0.5) / m) for j in range(m)]``, the quantiles looked up in one call."""
        ps = [(j + 0.5) / m for j in range(m)]
        x, cdf = _t_cdf(self.dof)
        ts = np.interp([p if p >= 0.5 else 1.0 - p for p in ps], cdf, x).tolist()
        return np.array([math.exp(self.mu + self.sd * (t if p >= 0.5 else -t)) for p, t in zip(ps, ts)])

    def covers(self, r: float) -> bool:
        return self.lo <= r <= self.hi


def band_of(ratios, groups=None, origin: str = "") -> Band:
    """The prediction band of ``ratios`` (> 0), grouped by ``groups`` (one group when None)."""
    logs = np.log(np.asarray(list(ratios), dtype=float))
    if groups is None:
        groups = [""] * len(logs)
    groups = list(groups)
    if len(logs) < 2 or len(groups) != len(logs) or not np.all(np.isfinite(logs)):
        raise ValueError("a band needs at least two positive residual ratios, one group each")
    names = list(dict.fromkeys(groups))
    k = len(names)
    if k == 1:
        n = len(logs)
        sd = float(np.std(logs, ddof=1)) * math.sqrt(1 + 1 / n)
        return Band(float(logs.mean()), sd, n - 1, n, 1, origin)
    means = {g: float(np.mean([x for x, h in zip(logs, groups) if h == g])) for g in names}
    within = [x - means[g] for x, g in zip(logs, groups)]
    se2 = float(np.sum(np.square(within)) / (len(logs) - k)) if len(logs) > k else 0.0
    sb2 = float(np.var(list(means.values()), ddof=1))
    sd = math.sqrt(sb2 * (1 + 1 / k) + se2)
    return Band(float(np.mean(list(means.values()))), sd, k - 1, len(logs), k, origin)


@functools.lru_cache(maxsize=3)
def shipped_band(moe: bool | None = None) -> Band:
    """The band of the shipped residuals: every row (``moe`` None), or the dense (False) or the
    mixture-of-experts (True) rows alone. A workload gets its own class's (shipped_band_for): the
    model's out-of-sample error on MoE rows is about four times its error on dense ones
    (docs/validation.md), and one band for both was too wide for the one and too narrow for the other."""
    rs = [r for r in shipped_ratios() if moe is None or r["moe"] == moe]
    what = {None: "", False: "'s dense rows", True: "'s MoE rows"}[moe]
    return band_of([r["ratio"] for r in rs], [r["source"] for r in rs],
                   f"the shipped validation{what}, leave-one-source-out")


def shipped_band_for(scenario) -> Band:
    """The shipped band of the workload's class: MoE when its model has experts, dense otherwise."""
    from simulator.model.arch import resolve

    return shipped_band(resolve(scenario.workload.model).num_experts > 0)


def loso_coverage(rows: list[dict]) -> tuple[float, dict]:
    """Nested leave-one-source-out: each source's residuals against the band of the other sources'
    (coverage over rows, and per source)."""
    inside, per = [], {}
    for src in dict.fromkeys(r["source"] for r in rows):
        rest = [r for r in rows if r["source"] != src]
        b = band_of([r["ratio"] for r in rest], [r["source"] for r in rest])
        hits = [b.covers(r["ratio"]) for r in rows if r["source"] == src]
        per[src] = float(np.mean(hits))
        inside += hits
    return float(np.mean(inside)), per


def band_json(result, band: Band) -> dict:
    """The *_p10 / *_p90 keys of a run's JSON for ``band`` (the central keys untouched)."""
    lo, hi = band.lo, band.hi
    out = {
        "step_time_s_p10": result.step_time_s * lo, "step_time_s_p90": result.step_time_s * hi,
        "tokens_per_s_p10": result.tokens_per_s / hi, "tokens_per_s_p90": result.tokens_per_s / lo,
        "mfu_p10": result.mfu / hi, "mfu_p90": result.mfu / lo,
    }
    c = result.campaign
    samples = np.asarray(getattr(c, "time_to_train_days_samples", ()) or (), dtype=float)
    samples = samples[np.isfinite(samples)]
    if c is not None and len(samples):
        prod = np.outer(samples, band.draws()).ravel()
        t10, t90 = (float(t) for t in np.percentile(prod, [100 * (1 - LEVEL), 100 * LEVEL]))
        out["time_to_train_days_band_p10"], out["time_to_train_days_band_p90"] = t10, t90
        e = result.energy
        if e is not None:
            mean = float(samples.mean())
            out["energy_mwh_p10"] = e.energy_j / 3.6e9 * t10 / mean
            out["energy_mwh_p90"] = e.energy_j / 3.6e9 * t90 / mean
            out["cost_usd_p10"] = e.cost_usd * t10 / mean
            out["cost_usd_p90"] = e.cost_usd * t90 / mean
    out["band"] = {"method": "random-effects prediction interval of the out-of-sample step-time ratio "
                             "(Student t), x campaign Monte Carlo",
                   "residuals": band.origin, "rows": band.rows, "sources": band.groups,
                   "ratio_p10": lo, "ratio_p90": hi}
    return out


def band_text(result, bands: dict) -> str:
    from simulator.units import fmt_duration, fmt_si

    b = bands
    parts = [f"step time {fmt_duration(result.step_time_s)} (P10–P90 {fmt_duration(b['step_time_s_p10'])}–"
             f"{fmt_duration(b['step_time_s_p90'])})",
             f"tokens/s {fmt_si(result.tokens_per_s)} ({fmt_si(b['tokens_per_s_p10'])}–{fmt_si(b['tokens_per_s_p90'])})",
             f"MFU {100 * result.mfu:.1f} % ({100 * b['mfu_p10']:.1f}–{100 * b['mfu_p90']:.1f} %)"]
    if "time_to_train_days_band_p10" in b:
        lo, hi = b["time_to_train_days_band_p10"], b["time_to_train_days_band_p90"]
        span = (f"{lo:.1f}–{hi:.1f} d" if hi >= 0.05 else   # a run of minutes read "0.0–0.0 d"
                f"{fmt_duration(lo * 86400.0)}–{fmt_duration(hi * 86400.0)}")
        parts.append(f"time to train P10–P90 {span} (model error and failures)")
    if "energy_mwh_p10" in b:
        parts.append(f"energy {b['energy_mwh_p10']:,.0f}–{b['energy_mwh_p90']:,.0f} MWh")
        parts.append(f"$ {fmt_si(b['cost_usd_p10'])}–{fmt_si(b['cost_usd_p90'])}")
    src = b["band"]["sources"]
    text = (f"prediction band  " + " · ".join(parts)
            + f"\n                 (model error from {b['band']['residuals']}, {b['band']['rows']} rows"
            + (f" of {src} sources" if src > 1 else "") + ", with the campaign's spread)")
    if "calibration" in b:
        text += f"\ncalibration      {b['calibration']}"
    return text


def coverage_report(rows: list[dict] | None = None) -> str:
    """Nested leave-one-source-out coverage of the band, with the plain pooled P10/P90 of the other
    sources' residuals for comparison (``python -m simulator.calibration.bands --coverage``)."""
    rows = shipped_ratios() if rows is None else rows
    cov, per = loso_coverage(rows)
    plain = []
    for src in dict.fromkeys(r["source"] for r in rows):
        lo, hi = np.percentile([r["ratio"] for r in rows if r["source"] != src], [10, 90])
        plain += [lo <= r["ratio"] <= hi for r in rows if r["source"] == src]
    b = shipped_band()
    lines = [f"{len(rows)} held-out rows of {len(per)} sources; P10-P90 coverage: this band {100 * cov:.0f} %, "
             f"pooled empirical P10/P90 {100 * np.mean(plain):.0f} % (nominal 80 %)"]
    lines += [f"  {s:<24} {100 * c:5.0f} %  ({sum(r['source'] == s for r in rows)} rows)" for s, c in per.items()]
    lines.append(f"one band for every row: step-time ratio P10-P90 {b.lo:.3f}-{b.hi:.3f} (t on {b.dof} dof)")
    for moe in (False, True):   # the bands a workload gets: its class's (shipped_band_for)
        own = [r for r in rows if r.get("moe") == moe]
        if len(own) < 3:
            continue
        cb = band_of([r["ratio"] for r in own], [r["source"] for r in own])
        if len({r["source"] for r in own}) > 1:
            c, _ = loso_coverage(own)
            how = "nested leave-one-source-out"
        else:   # one source: a new source cannot be held out; each row against the others'
            c = float(np.mean([band_of([x["ratio"] for j, x in enumerate(own) if j != i]).covers(r["ratio"])
                               for i, r in enumerate(own)]))
            how = "leave-one-row-out (one source: optimistic)"
        lines.append(f"{'MoE' if moe else 'dense'} band ({len(own)} rows): P10-P90 {cb.lo:.3f}-{cb.hi:.3f}, "
                     f"coverage {100 * c:.0f} % {how}")
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:] == ["--coverage"]:
        print(coverage_report())
        return
    from simulator.validation.fit import leave_one_source_out
    from simulator.validation.runner import CHECK_ONLY_SOURCES, cases

    ok, _ = cases()
    # the band's residuals come from the fitted sources only: a check-only source's error includes
    # what its publication leaves unknown (a FLOP definition, a GPU's clocks), not just the model's
    ok = [c for c in ok if c.source not in CHECK_ONLY_SOURCES]
    held = leave_one_source_out(ok, progress=lambda i, n: print(f"  {i}/{n}", file=sys.stderr))
    path = resources.files("simulator.calibration").joinpath(SHIPPED)
    with open(str(path), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "run", "metric", "published", "predicted", "ratio", "moe"])
        for h in held:
            for r in h.rows:
                w.writerow([r.source, r.run, r.metric, r.published, f"{r.predicted:.6g}",
                            f"{ratio(r.metric, r.published, r.predicted):.6f}", int(r.moe)])
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
