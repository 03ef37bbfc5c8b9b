"""Compute-optimal model size and tokens from the Chinchilla parametric loss fit.

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models"), approach 3, fit the final
pre-training loss of ~400 runs (70M-16B parameters, 5B-500B tokens, MassiveText) as

    L(N, D) = E + A / N^alpha + B / D^beta,   E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28

with N parameters and D training tokens, and training compute C = 6 N D. Minimising L on C = 6 N D:

    N_opt = G (C/6)^a,  D_opt = (C/6)^b / G,  G = (alpha A / (beta B))^(1 / (alpha + beta)),
    a = beta / (alpha + beta),  b = alpha / (alpha + beta)

and along that frontier L - E = (A G^-alpha + B G^beta) (C/6)^(-gamma), gamma = alpha beta / (alpha + beta),
which inverts to the least compute reaching a target loss. Limits (docs/levers.md): losses are in
nats per token of MassiveText with its tokenizer, so absolute values do not transfer to other data;
the fit spans up to ~16B parameters and 5.76e23 FLOPs; Besiroglu et al. 2024 (Epoch AI, "Chinchilla
Scaling: A replication attempt") found the published approach-3 estimates inconsistent with the
paper's approaches 1-2 (~20 tokens per parameter) and with the paper's own data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LossFit:
    """L(N, D) = E + A / N^alpha + B / D^beta (nats per token)."""

    E: float = 1.69
    A: float = 406.4
    B: float = 410.7
    alpha: float = 0.34
    beta: float = 0.28
    source: str = "Hoffmann et al. 2022, approach 3"

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    @property
    def gamma(self) -> float:
        return self.alpha * self.beta / (self.alpha + self.beta)


CHINCHILLA = LossFit()
# The runs the fit was made on: "over 400 language models ranging from 70 million to over 16
# billion parameters on 5 to 500 billion tokens" (Hoffmann et al. 2022, abstract).
FIT_PARAMS = (7e7, 1.6e10)
FIT_TOKENS = (5e9, 5e11)


@dataclass(frozen=True)
class Proposal:
    """A model size and token count with their loss and training compute (C = 6 N D)."""

    params: float
    tokens: float
    loss: float
    compute: float

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params


def extrapolated(n: float, d: float) -> bool:
    """Whether (N, D) lies outside the parameter and token ranges the fit was made on."""
    return not (FIT_PARAMS[0] <= n <= FIT_PARAMS[1] and FIT_TOKENS[0] <= d <= FIT_TOKENS[1])


def loss(n: float, d: float, fit: LossFit = CHINCHILLA) -> float:
    """Predicted final loss of an N-parameter model trained on D tokens."""
    return fit.E + fit.A / n ** fit.alpha + fit.B / d ** fit.beta


def proposal(n: float, d: float, fit: LossFit = CHINCHILLA) -> Proposal:
    return Proposal(n, d, loss(n, d, fit), 6.0 * n * d)


def compute_optimal(compute: float, fit: LossFit = CHINCHILLA) -> Proposal:
    """The loss-minimising (N, D) for a compute budget C = 6 N D (closed form)."""
    if compute <= 0:
        raise ValueError(f"compute budget must be positive, got {compute}")
    a = fit.beta / (fit.alpha + fit.beta)
    b = fit.alpha / (fit.alpha + fit.beta)
    n = fit.G * (compute / 6.0) ** a
    d = (compute / 6.0) ** b / fit.G
    return proposal(n, d, fit)


def compute_for_loss(target: float, fit: LossFit = CHINCHILLA) -> float:
    """The least training compute (FLOPs) whose compute-optimal model reaches ``target``."""
    if target <= fit.E:
        raise ValueError(f"target loss {target} is at or below the irreducible loss E = {fit.E}")
    k = fit.A * fit.G ** -fit.alpha + fit.B * fit.G ** fit.beta
    return 6.0 * (k / (target - fit.E)) ** (1.0 / fit.gamma)


def optimal_for_loss(target: float, fit: LossFit = CHINCHILLA) -> Proposal:
    """The compute-optimal (N, D) reaching ``target`` loss."""
    return compute_optimal(compute_for_loss(target, fit), fit)


def tokens_for_loss(n: float, target: float, fit: LossFit = CHINCHILLA) -> float | None:
    """Tokens an N-parameter model needs to reach ``target``; None if it never does (A/N^alpha too big)."""
    gap = target - fit.E - fit.A / n ** fit.alpha
    if gap <= 0:
        return None
    return (fit.B / gap) ** (1.0 / fit.beta)


def smallest_params_for_loss(target: float, fit: LossFit = CHINCHILLA) -> float:
    """Below this size no amount of data reaches ``target`` (the D -> infinity limit)."""
    if target <= fit.E:
        raise ValueError(f"target loss {target} is at or below the irreducible loss E = {fit.E}")
    return (fit.A / (target - fit.E)) ** (1.0 / fit.alpha)


def minimise_numerically(compute: float, fit: LossFit = CHINCHILLA, steps: int = 200) -> Proposal:
    """Minimise L(N, C / 6N) over log N by golden-section search (a check on the closed form)."""
    lo, hi = math.log(1e3), math.log(compute / 6.0 / 1e3)
    f = lambda x: loss(math.exp(x), compute / 6.0 / math.exp(x), fit)   # noqa: E731
    r = (math.sqrt(5) - 1) / 2
    c, d = hi - r * (hi - lo), lo + r * (hi - lo)
    for _ in range(steps):
        if f(c) < f(d):
            hi, d = d, c
            c = hi - r * (hi - lo)
        else:
            lo, c = c, d
            d = lo + r * (hi - lo)
    n = math.exp((lo + hi) / 2)
    return proposal(n, compute / 6.0 / n, fit)
