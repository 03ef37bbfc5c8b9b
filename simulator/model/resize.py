"""New architectures from a workload's model: scaled to a parameter count, or structurally pruned.

Scaling rule (documented in docs/levers.md): keep everything that defines the model family —
vocabulary, sequence length, activation, normalization, positions, head dimension (kv_channels),
the KV group count under GQA (MHA stays MHA), MLP width / hidden width — and its aspect ratio hidden / layers
(Llama 3 8B: 4096 / 32 = 128) as closely as the target size allows: among head counts (multiples of
the KV group count) and layer counts within 5% of the target parameter count, take the one
nearest the workload's aspect ratio. Kaplan et al. 2020 (Fig. 5) found the loss nearly flat in the
aspect ratio over a wide range, so keeping it roughly is a neutral choice.

Pruning rule: Minitron-style structured pruning (Muralidharan et al. 2024) removes hidden channels
and MLP neurons (width) and/or whole layers (depth); ``width`` scales the hidden and MLP widths and
keeps the attention heads, as Llama-3.1-Minitron-4B-Width does, ``depth`` the layer count. Which
channels survive does not matter here: only the shape of the pruned model is priced.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.errors import ConfigError
from simulator.model.arch import resolve
from simulator.model.params import count

if TYPE_CHECKING:        # annotations only: config validates with the model, not the reverse
    from simulator.config.workload import ModelConfig

_KEYS = ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups",
         "kv_channels")


def _round(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


def _layers(n: float) -> int:
    """Round a layer count; above 8 layers to an even number (pipeline stages can divide it)."""
    return max(1, round(n)) if n <= 8 else _round(n, 2)


def _groups(a, heads: int) -> int:
    """KV groups for ``heads`` heads: MHA stays MHA; GQA keeps the workload's KV group count, as the
    Llama 3 family does (8 KV heads at 8B, 70B and 405B; Meta 2024, Table 3)."""
    return heads if a.query_groups == a.heads else a.query_groups


def _with_heads(m: ModelConfig, heads: int, layers: int) -> ModelConfig:
    """``m`` with ``heads`` attention heads, hidden and MLP widths in proportion, and ``layers``."""
    a = resolve(m)
    d = a.kv_channels
    hidden = round(m.hidden_size * heads / a.heads)
    ffn = _round(a.ffn * hidden / a.hidden, 128)
    update = {"num_layers": layers, "hidden_size": hidden, "ffn_hidden_size": ffn, "num_attention_heads": heads}
    if m.multi_latent_attention is None:   # MLA sets its head shapes itself
        update.update(num_query_groups=_groups(a, heads),
                      kv_channels=d if hidden != heads * d or m.kv_channels is not None else None)
    if m.layer_types is not None:
        update["layer_types"] = _thin(m.layer_types, layers)
    if m.moe is not None and isinstance(m.moe.moe_layer_freq, list):
        update["moe"] = m.moe.model_copy(update={"moe_layer_freq": _thin(m.moe.moe_layer_freq, layers)})
    if m.moe is not None and m.moe.moe_ffn_hidden_size is not None:
        moe = update.get("moe", m.moe).model_copy(update={"moe_ffn_hidden_size": _round(m.moe.moe_ffn_hidden_size * ffn / a.ffn, 128)})
        update["moe"] = moe
    return m.model_copy(update=update)


def _candidates(m: ModelConfig, target: float, step: int):
    """(model, parameters) per head count (a multiple of ``step``), with the layer count that comes
    closest to ``target`` at that width; stops once one layer at that width is already too big."""
    k = 1
    while True:
        heads = k * step
        one, two = (count(resolve(_with_heads(m, heads, n))).total for n in (1, 2))
        per_layer, outer = two - one, 2 * one - two
        exact = (target - outer) / per_layer
        if exact < 1 and k > 1:
            return
        for layers in {_layers(exact), max(1, _layers(exact) - (2 if exact > 8 else 1)),
                       _layers(exact) + (2 if exact > 8 else 1)}:
            yield _with_heads(m, heads, layers), outer + layers * per_layer
        k += 1


def scaled_model(m: ModelConfig, target_params: float, multiple: int = 1, tolerance: float = 0.05) -> ModelConfig:
    """The model of ``m``'s family with about ``target_params`` parameters.

    Among (heads, layers) within ``tolerance`` of the target, prefer those whose heads and KV groups
    are multiples of ``multiple`` (e.g. the workload's tensor-parallel size) and whose aspect ratio
    is within 25% of ``m``'s; then take the one nearest ``m``'s aspect ratio hidden / layers. GQA
    heads come in multiples of the KV group count; layers above 8 are even.
    """
    from simulator.limits import MAX_MODEL_PARAMS

    if not 0 < target_params <= MAX_MODEL_PARAMS:   # the search below takes one candidate per head count
        raise ConfigError(f"a model of {target_params:.3g} parameters is beyond any trainable one",
                          source="--params", value=target_params,
                          expected=f"at most {MAX_MODEL_PARAMS:.0e} parameters")
    a = resolve(m)
    aspect = a.hidden / a.num_layers
    step = 1 if a.query_groups == a.heads else a.query_groups
    cands = list(_candidates(m, target_params, step))
    if not cands:
        return _with_heads(m, step, 1)

    def skew(c: ModelConfig) -> float:
        return abs(math.log(c.hidden_size / c.num_layers / aspect))

    close = [c for c, n in cands if abs(n - target_params) <= tolerance * target_params]
    good = [c for c in close if c.num_attention_heads % multiple == 0 and c.num_query_groups % multiple == 0
            and skew(c) <= math.log(1.25)]
    if good or close:
        return min(good or close, key=skew)
    return min(cands, key=lambda cn: abs(cn[1] - target_params))[0]


# pruned widths are whole multiples of this many channels (tensor-core and TP-friendly; Minitron's
# pruned Llama 3.1 widths 3072 and 9216 are multiples of it)
PRUNE_MULTIPLE = 128


def pruned_model(m: ModelConfig, width: float = 1.0, depth: float = 1.0) -> ModelConfig:
    """``m`` with ``width`` of its hidden and MLP channels and ``depth`` of its layers; attention heads,
    KV groups and head dimension are kept (Llama-3.1-Minitron-4B-Width: hidden 4096 -> 3072, MLP
    14336 -> 9216, 32 heads and 8 KV heads of 128 channels kept; Sreenivas et al. 2024)."""
    if not (0 < width <= 1 and 0 < depth <= 1):
        raise ValueError(f"width and depth fractions must be in (0, 1], got {width}, {depth}")
    a = resolve(m)
    layers = max(1, round(a.num_layers * depth))
    update = {"num_layers": layers, "hidden_size": _round(a.hidden * width, PRUNE_MULTIPLE),
              "ffn_hidden_size": _round(a.ffn * width, PRUNE_MULTIPLE)}
    if m.multi_latent_attention is None:   # MLA sets its head shapes itself
        update.update(kv_channels=a.kv_channels, num_query_groups=a.query_groups)
    if m.layer_types is not None:          # per-layer patterns keep their leading entries
        update["layer_types"] = _thin(m.layer_types, layers)
    moe_update = {}
    if m.moe is not None and m.moe.moe_ffn_hidden_size is not None:
        moe_update["moe_ffn_hidden_size"] = _round(m.moe.moe_ffn_hidden_size * width, PRUNE_MULTIPLE)
    if m.moe is not None and isinstance(m.moe.moe_layer_freq, list):
        moe_update["moe_layer_freq"] = _thin(m.moe.moe_layer_freq, layers)
    if moe_update:
        update["moe"] = m.moe.model_copy(update=moe_update)
    return m.model_copy(update=update)


def _thin(pattern: list, layers: int) -> list:
    """A per-layer list brought to ``layers`` entries: its first ones (depth pruning drops a contiguous
    block of layers, Sreenivas et al. 2024), which keeps an alternating pattern alternating and
    leading dense layers leading; a longer model repeats the pattern."""
    return [pattern[i % len(pattern)] for i in range(layers)]


def model_overrides(old: ModelConfig, new: ModelConfig) -> list[str]:
    """``--set`` strings that turn a workload with model ``old`` into one with model ``new``."""
    out = [f"model.{k}={getattr(new, k)}" for k in _KEYS
           if getattr(new, k) != getattr(old, k) and getattr(new, k) is not None]
    if new.moe is not None and old.moe is not None and new.moe.moe_ffn_hidden_size != old.moe.moe_ffn_hidden_size:
        out.append(f"model.moe.moe_ffn_hidden_size={new.moe.moe_ffn_hidden_size}")
    return out


def describe(m: ModelConfig) -> str:
    a = resolve(m)
    return (f"{count(a).total / 1e9:.2f}B: {a.num_layers} layers, hidden {a.hidden}, MLP {a.ffn}, "
            f"{a.heads} heads / {a.query_groups} KV groups")
