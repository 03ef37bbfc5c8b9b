"""Refit the global efficiencies on a user's measured runs, the shipped values as a prior.

The parameters, their bounds and the machinery are the shipped fit's (simulator/validation/fit.py:
FIT_BOUNDS, the [0, 1] mapping, the log-linear model of each row with finite-difference slopes, a
trust region). The objective adds a prior to the mean absolute percentage error:

    MAPE(rows) + PRIOR_WEIGHT x sum_j (x_j - x0_j)^2

with x_j a parameter mapped to [0, 1] over its FIT_BOUNDS range and x0_j the shipped value: moving a
parameter across half its range costs PRIOR_WEIGHT / 4 of MAPE. A parameter the rows do not
inform (zero slope) stays at its shipped value; one they do inform moves as far as the data pay for.
As the data term is an absolute error, a small prior does not bias an exact fit (its slope at
zero error is finite), so noise-free measurements recover the parameters that generated them.

Leave-one-out: each row is predicted by parameters refitted without it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.cost.efficiency import DEFAULT, FIT_BOUNDS, Efficiency
from simulator.validation.fit import Linear, _from_unit, _to_unit, coordinate_search, linearise, trust_region

PRIOR_WEIGHT = 0.02     # MAPE units per (unit range)^2
MOVED = 0.01             # a parameter "moved" when it shifts by more than 1 % of its range
AT_BOUND = 1e-3          # within 0.1 % of its range from a bound


def _score(logp: np.ndarray, log_meas: np.ndarray, x: np.ndarray, x0: np.ndarray, w: float) -> np.ndarray:
    """Objective of candidates: columns of logp (rows x K) and of x (params x K)."""
    err = np.abs(np.exp(logp - log_meas[:, None]) - 1.0).mean(axis=0)
    return err + w * ((x - x0[:, None]) ** 2).sum(axis=0)


def _surrogate(lin: Linear, log_meas: np.ndarray, x0: np.ndarray, radius: float, w: float,
               sweeps: int = 30) -> np.ndarray:
    return coordinate_search(lin, radius, lambda logp, xs: _score(logp, log_meas, xs, x0, w), sweeps, anchor=x0)


def fit_prior(cases, prior: Efficiency = DEFAULT, names: tuple[str, ...] = tuple(FIT_BOUNDS),
              weight: float = PRIOR_WEIGHT, rounds: int = 20, lin: Linear | None = None) -> tuple[Efficiency, Linear]:
    """Minimise MAPE + prior over ``cases`` (objects with .row["value"] and .predict(eff))."""
    log_meas = np.log([float(c.row["value"]) for c in cases])
    x0 = _to_unit(prior, names)
    x = x0.copy() if lin is None else lin.x.copy()
    lin = lin or linearise(cases, prior, names, x)
    best = float(_score(lin.p0[:, None], log_meas, x[:, None], x0, weight)[0])
    x, lin = trust_region(cases, prior, names, x, lin, best,
                          lambda ln, r: _surrogate(ln, log_meas, x0, r, weight),
                          lambda pz, z: float(_score(pz[:, None], log_meas, z[:, None], x0, weight)[0]),
                          rounds, 1e-7, shrink_on_stall=True)
    return _from_unit(prior, names, x), lin


@dataclass(frozen=True)
class Calibrated:
    efficiency: Efficiency
    names: tuple[str, ...]
    rows: list            # validation.runner.Row, in-sample, calibrated parameters
    before: list          # the same rows with the shipped parameters
    loo: list             # each row predicted by parameters fitted without it
    moved: dict           # name -> (shipped, calibrated)
    at_bound: dict        # name -> (value, "lower" | "upper")


def calibrate(cases, prior: Efficiency = DEFAULT, names: tuple[str, ...] = tuple(FIT_BOUNDS),
              weight: float = PRIOR_WEIGHT) -> Calibrated:
    eff, lin = fit_prior(cases, prior, names, weight)
    x0 = _to_unit(prior, names)
    full = linearise(cases, prior, names, x0) if lin is None else lin
    loo = []
    for i, c in enumerate(cases):
        keep = np.array([j != i for j in range(len(cases))])
        rest = [d for j, d in enumerate(cases) if j != i]
        e_i, _ = fit_prior(rest, prior, names, weight, rounds=6, lin=full.take(np.flatnonzero(keep)))
        loo.append(c.predict(e_i))
    moved, at_bound = {}, {}
    for n in names:
        lo, hi = FIT_BOUNDS[n]
        a, b = getattr(prior, n), getattr(eff, n)
        if abs(b - a) > MOVED * (hi - lo):
            moved[n] = (a, b)
        if b - lo <= AT_BOUND * (hi - lo):
            at_bound[n] = (b, "lower")
        elif hi - b <= AT_BOUND * (hi - lo):
            at_bound[n] = (b, "upper")
    return Calibrated(eff, names, [c.predict(eff) for c in cases], [c.predict(prior) for c in cases],
                      loo, moved, at_bound)
