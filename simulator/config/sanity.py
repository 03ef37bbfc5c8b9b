"""Physical-consistency checks across keys that each validate alone: a value that cannot describe a
real training run is an error naming both keys (never a silently nonsensical prediction)."""
from __future__ import annotations

import math

from simulator.config.loader import fail as _fail   # the key's source, with a file key's overrides
from simulator.errors import ConfigError
from simulator.units import fmt_si


def check_scenario(workload, cluster, seq_length: int, wwhere, cwhere) -> None:
    """Cross-key checks of a validated workload and cluster (``wwhere``/``cwhere``: loc -> source)."""
    t = workload.training
    per_step = t.global_batch_size * seq_length
    if t.train_tokens is not None and t.train_iters is None and t.train_tokens < per_step:
        _fail(wwhere, "training.train_tokens",
              f"is less than one step: global_batch_size x seq_length = {t.global_batch_size} x {seq_length} "
              f"= {fmt_si(per_step)} tokens", t.train_tokens,
              f"at least {per_step:,} tokens (one global batch), e.g. '15T'")
    if t.eval_interval is None and t.eval_time > 0:
        _fail(wwhere, "training.eval_time", "is set but training.eval_interval is not, so no evaluation runs",
              t.eval_time, "training.eval_interval (steps between evaluations) as well, or no eval_time")
    spares = cluster.reliability.spare_nodes   # null: a fraction of the job's nodes (docs/campaign.md)
    if spares is not None and spares > cluster.num_nodes:
        _fail(cwhere, "reliability.spare_nodes",
              f"exceeds num_nodes={cluster.num_nodes}: a hot-spare pool larger than the cluster it serves", spares,
              f"at most num_nodes ({cluster.num_nodes})")


def check_silent_keys(cluster, cwhere) -> None:
    """Cluster keys that would otherwise be accepted and do nothing, or describe no real machine."""
    fabric, node = cluster.fabric, cluster.node
    if fabric.torus_dims is not None and fabric.kind != "torus3d":
        _fail(cwhere, "fabric.torus_dims", f"applies to a torus3d fabric, but fabric.kind is {fabric.kind}",
              fabric.torus_dims, "fabric.kind: torus3d, or no torus_dims")
    d, g = node.nvlink.domain_size, node.gpus_per_node
    if d is not None and d % g and g % d:
        _fail(cwhere, "node.nvlink.domain_size", f"neither a multiple nor a divisor of gpus_per_node={g}: "
              "an NVLink domain holds whole nodes (NVL72: 18 nodes of 4) or splits one evenly", d,
              f"a multiple of {g} or a divisor of it")


def check_fabric_ratios(fabric, cwhere) -> None:
    """A switch of R ports can oversubscribe at most R - 1 downlinks over its one uplink (a torus has
    no switches: its ratios do not apply)."""
    if fabric.kind == "torus3d":
        return
    top = fabric.switch_radix - 1
    ratios = [("fabric.oversubscription", fabric.oversubscription)]
    ratios += [(f"fabric.tier_oversubscription.{i}", r) for i, r in enumerate(fabric.tier_oversubscription or ())]
    for path, ratio in ratios:
        if ratio > top:
            _fail(cwhere, path, f"exceeds what a switch of switch_radix={fabric.switch_radix} ports can do "
                  f"({top} downlinks over one uplink)", ratio, f"at most {top}")


def check_step_time(step_time: float, source: str) -> None:
    """A step time that is not a finite positive number comes from figures no hardware has (an
    inline GPU at 1e-300 FLOP/s): bad input, not a prediction."""
    if not (isinstance(step_time, float | int) and math.isfinite(step_time) and step_time > 0):
        raise ConfigError(f"the GPU, node and fabric figures give a step time of {step_time!r} s", source=source,
                          path="gpu", expected="physically plausible figures (peak FLOP/s, bandwidths) "
                                               "that give a finite, positive step time")
