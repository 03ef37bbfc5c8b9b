"""New architectures from a workload's model: scaled to a parameter count, or structurally pruned.

Scaling rule (documented in docs/levers.md): keep everything that defines the model family —
vocabulary, sequence length, activation, normalization, positions, head dimension (kv_channels),
query heads per KV group (GQA), MLP width / hidden width — and its aspect ratio hidden / layers
(Llama 3 8B: 4096 / 32 = 128); choose the number of attention heads (a multiple of the heads per KV
group) whose model comes closest to the target parameter count. Kaplan et al. 2020 (Fig. 5) found
the loss nearly flat in the aspect ratio over a wide range, so keeping it is a neutral choice.

Pruning rule: Minitron-style structured pruning (Muralidharan et al. 2024) removes attention heads,
MLP neurons and hidden channels (width) and/or whole layers (depth); ``width`` scales heads (hence
hidden) and the MLP width, ``depth`` the layer count. Which channels survive does not matter here:
only the shape of the pruned model is priced.
"""
from __future__ import annotations

from simulator.config.workload import ModelConfig
from simulator.model.arch import resolve
from simulator.model.params import count

_KEYS = ("num_layers", "hidden_size", "ffn_hidden_size", "num_attention_heads", "num_query_groups",
         "kv_channels")


def _round(x: float, multiple: int) -> int:
    return max(multiple, int(round(x / multiple)) * multiple)


def _layers(n: float) -> int:
    """Round a layer count; above 8 layers to a multiple of 4 so pipeline stages can divide it."""
    return max(1, round(n)) if n <= 8 else _round(n, 4)


def _with_heads(m: ModelConfig, heads: int, layers: int, ffn_scale: float = 1.0) -> ModelConfig:
    """``m`` with ``heads`` attention heads, hidden and MLP widths in proportion, and ``layers``."""
    a = resolve(m)
    per_group = a.heads // a.query_groups
    d = a.kv_channels
    hidden = round(m.hidden_size * heads / a.heads)
    ffn = _round(a.ffn * hidden / a.hidden * ffn_scale, 128)
    update = {"num_layers": layers, "hidden_size": hidden, "ffn_hidden_size": ffn,
              "num_attention_heads": heads, "num_query_groups": heads // per_group,
              "kv_channels": d if hidden != heads * d or m.kv_channels is not None else None}
    if m.moe is not None and m.moe.moe_ffn_hidden_size is not None:
        moe = m.moe.model_copy(update={"moe_ffn_hidden_size": _round(m.moe.moe_ffn_hidden_size * ffn / a.ffn, 128)})
        update["moe"] = moe
    return m.model_copy(update=update)


def scaled_model(m: ModelConfig, target_params: float, multiple: int = 1) -> ModelConfig:
    """The model of ``m``'s family and aspect ratio whose parameter count is closest to the target,
    with a number of KV groups that is a multiple of ``multiple`` (e.g. the tensor-parallel size)."""
    a = resolve(m)
    per_group = a.heads // a.query_groups
    aspect = a.hidden / a.num_layers
    best, best_err = m, float("inf")
    k = 1
    while True:
        heads = k * per_group * multiple
        hidden = m.hidden_size * heads / a.heads
        cand = _with_heads(m, heads, _layers(hidden / aspect))
        n = count(resolve(cand)).total
        err = abs(n - target_params)
        if err < best_err:
            best, best_err = cand, err
        if n > target_params and err > best_err:
            return best
        k += 1


def pruned_model(m: ModelConfig, width: float = 1.0, depth: float = 1.0) -> ModelConfig:
    """``m`` with ``width`` of its attention heads (and hidden and MLP widths) and ``depth`` of its layers."""
    if not (0 < width <= 1 and 0 < depth <= 1):
        raise ValueError(f"width and depth fractions must be in (0, 1], got {width}, {depth}")
    a = resolve(m)
    per_group = a.heads // a.query_groups
    heads = max(per_group, int(round(a.heads * width / per_group)) * per_group)
    return _with_heads(m, heads, max(1, round(a.num_layers * depth)))


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
