"""Where routed tokens go: expected copies per token that leave a token's scale-up domain.

Routing is taken as balanced and uniform (each token picks ``topk`` distinct experts at random;
the experts of an EP group are laid out evenly over its ``domains`` scale-up domains). NCCL-style
all-to-all sends one copy per chosen expert; DeepEP-style dispatch (Megatron
``moe_token_dispatcher_type: flex``; deepseek-ai/DeepEP README: inter-node kernels send a token
once per destination node over RDMA and forward it over NVLink) sends one copy per distinct remote
domain. Group-limited routing (DeepSeek-V3 Sec. 2.1.2: each token's experts on at most M = 4
nodes; Megatron ``moe_router_num_groups`` / ``moe_router_group_topk``) caps the domains a token
reaches.
"""
from __future__ import annotations

from math import comb

from simulator.model.arch import Arch


def _p_domain_hit(experts: int, per_domain: float, topk: int) -> float:
    """Chance that one domain holding ``per_domain`` of ``experts`` gets at least one of ``topk``."""
    miss = comb(experts - int(per_domain), topk) / comb(experts, topk) if experts - per_domain >= topk else 0.0
    return 1.0 - miss


def remote_copies(a: Arch, domains: int, dedup: bool) -> float:
    """Expected copies of one token sent to other scale-up domains (dispatch; combine mirrors it)."""
    if domains <= 1 or not a.is_moe:
        return 0.0
    naive = a.topk * (domains - 1) / domains
    if not dedup:
        return naive
    per_domain = a.num_experts / domains
    hit = _p_domain_hit(a.num_experts, per_domain, a.topk)
    distinct = domains * hit                       # domains the token reaches, its own included
    if a.router_group_topk:                        # at most group_topk groups' worth of domains
        distinct = min(distinct, a.router_group_topk * max(1.0, domains / a.router_num_groups))
    return min(naive, max(0.0, distinct - hit))    # remote ones: drop the own domain's share


def dispatch_volume_factor(a: Arch, domains: int) -> float:
    """Bytes on the scale-out network under this dispatcher / under one copy per routed expert."""
    naive = remote_copies(a, domains, dedup=False)
    return remote_copies(a, domains, a.deepep) / naive if naive else 1.0
