"""Training phases: the workload mapping of each phase, defaults inherited from the top level.

A workload's ``phases:`` list (config/workload.PhaseConfig) describes a run that changes its batch,
sequence length, layout or GPU count as it goes (Llama 3: batch ramp-up, longer context, annealing).
Each phase becomes a full workload mapping: the top level's, with the phase's keys written over it
(``seq_length`` into model, ``global_batch_size`` and the length into training, ``parallelism`` key
by key, ``num_gpus``), which is then validated and derived exactly as a workload file is. One phase
may leave out its length: it trains what the top level's ``train_tokens`` (or ``train_iters``)
leaves after the other phases.
"""
from __future__ import annotations

import copy
import math

from simulator.config.workload import WorkloadConfig
from simulator.errors import ConfigError

LENGTH_KEYS = ("train_tokens", "train_iters")


def phase_name(cfg, index: int) -> str:
    return cfg.name or f"phase {index + 1}"


def _tokens_per_step(wcfg: WorkloadConfig, ph) -> int:
    gbs = ph.global_batch_size or wcfg.training.global_batch_size
    return gbs * (ph.seq_length or wcfg.model.seq_length)


def _remainder(wcfg: WorkloadConfig, where) -> tuple[int | None, str | None, float | None]:
    """(index of the phase without a length, the length key it gets, its length), checked."""
    phases, t = wcfg.phases, wcfg.training
    for k, ph in enumerate(phases):
        if ph.train_tokens is not None and ph.train_iters is not None:
            raise ConfigError("give train_tokens or train_iters, not both", source=where(("phases", k)),
                              path=f"phases[{k}]", value=(ph.train_tokens, ph.train_iters),
                              expected="one length per phase")
    open_ = [k for k, ph in enumerate(phases) if ph.train_tokens is None and ph.train_iters is None]
    top = "train_tokens" if t.train_tokens is not None else ("train_iters" if t.train_iters is not None else None)
    if len(open_) > 1:
        raise ConfigError("more than one phase has no length", source=where(("phases",)),
                          path=f"phases[{open_[1]}]", value=[phase_name(phases[k], k) for k in open_],
                          expected="train_tokens or train_iters on every phase but at most one, which "
                          "trains what is left of training.train_tokens / train_iters")
    if not open_:
        if top is not None:
            raise ConfigError("every phase has its own length, so the top-level length is unused",
                              source=where(("training", top)), path=f"training.{top}",
                              value=getattr(t, top), expected="no top-level length, or one phase "
                              "without a length to train the rest")
        return None, None, None
    k = open_[0]
    if top is None:
        raise ConfigError("this phase has no length and the top level gives none to share",
                          source=where(("phases", k)), path=f"phases[{k}]", value=phase_name(phases[k], k),
                          expected="train_tokens or train_iters on the phase, or training.train_tokens "
                          "(or train_iters) for the whole run")
    used = 0.0
    for j, ph in enumerate(phases):
        if j == k:
            continue
        per_step = _tokens_per_step(wcfg, ph)
        if top == "train_tokens":
            used += ph.train_tokens if ph.train_tokens is not None else ph.train_iters * per_step
        else:
            used += ph.train_iters if ph.train_iters is not None else math.ceil(ph.train_tokens / per_step)
    total = getattr(t, top)
    left = total - used
    if left < (_tokens_per_step(wcfg, phases[k]) if top == "train_tokens" else 1):
        raise ConfigError(f"the other phases take {used:,.4g} of the {total:,.4g} "
                          f"{'tokens' if top == 'train_tokens' else 'steps'} of training.{top}, leaving "
                          "less than one step for this phase", source=where(("training", top)),
                          path=f"phases[{k}]", value=phase_name(phases[k], k),
                          expected=f"training.{top} larger than the other phases' total")
    return k, top, (left if top == "train_tokens" else int(left))


def phase_raws(wcfg: WorkloadConfig, data: dict, where) -> list[tuple[str, dict]]:
    """(name, workload mapping) of each phase of ``wcfg`` (validated, overrides applied: ``data``)."""
    k_open, key, left = _remainder(wcfg, where)
    raw_phases = data.get("phases") or []
    out = []
    for k, ph in enumerate(wcfg.phases):
        raw = copy.deepcopy({kk: v for kk, v in data.items() if kk != "phases"})
        raw_ph = raw_phases[k] if k < len(raw_phases) and isinstance(raw_phases[k], dict) else {}
        model, training = dict(raw.get("model") or {}), dict(raw.get("training") or {})
        if ph.seq_length is not None:
            model["seq_length"] = ph.seq_length
        if ph.global_batch_size is not None:
            training["global_batch_size"] = ph.global_batch_size
        for lk in LENGTH_KEYS:
            training.pop(lk, None)
        if k == k_open:
            training[key] = left
        elif ph.train_tokens is not None:
            training["train_tokens"] = ph.train_tokens
        else:
            training["train_iters"] = ph.train_iters
        raw["model"], raw["training"] = model, training
        par = dict(raw.get("parallelism") or {})
        par.update(raw_ph.get("parallelism") or {})
        raw["parallelism"] = par
        if ph.num_gpus is not None:
            raw["num_gpus"] = ph.num_gpus
        out.append((phase_name(ph, k), raw))
    return out


def in_phase(exc: ConfigError, index: int, name: str) -> ConfigError:
    """The error of a phase's derived workload, said to be in that phase."""
    path = f"phases[{index}]" + (f" ({exc.path})" if exc.path else "")
    msg, head = str(exc), ": ".join(str(p) for p in (exc.source, exc.path) if p)
    if head and msg.startswith(head + ": "):
        msg = msg[len(head) + 2:]
    return ConfigError(f"in {name}, with the top level's values for the keys the phase leaves out: {msg}",
                       source=exc.source, path=path)
