"""Megatron-Core's ``pipeline_model_parallel_layout``: which layers each (virtual) pipeline stage holds.

The layout lists the PP x VPP virtual stages in execution order, virtual stage ``k`` running on
pipeline rank ``k % PP`` as that rank's model chunk ``k // PP`` (Megatron-Core
``megatron/core/transformer/pipeline_parallel_layer_layout.py``, ``PipelineParallelLayerLayout``).
As a string: ``|`` separates stages, ``E`` is the embedding, ``t`` a decoder layer, ``m`` a
multi-token-prediction module, ``L`` the loss; ``X*n`` and ``(...)*n`` repeat; commas are cosmetic.
``"Et*3|(tt|)*29,m|L"`` is ``[[E,t,t,t]] + [[t,t]]*29 + [[m],[L]]``. As a list of lists the names are
``embedding``, ``decoder``, ``mtp``, ``loss``.

Megatron's rules kept here: the embedding comes first and the loss last, each exactly once; the
decoder layers number num_layers and the MTP modules mtp_num_layers, all after the last decoder
layer, and MTP only in the last model chunk of the rank that holds it, never on the first rank
(unless PP = 1). The MTP modules must sit together in one virtual stage: with the loss (the usual
recipe layouts) or, "standalone", in a stage of their own on another rank (Megatron-Core's
mtp_standalone), which then also holds its copy of the output projection for the MTP logits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

NAMES = {"embedding": "E", "decoder": "t", "mtp": "m", "loss": "L"}
_REPEAT = re.compile(r"(\([^()]*\)|[EtmL])\*(\d+)")
_LONG_COUNT = re.compile(r"\*0*[1-9]\d{6,}")   # a repeat count of ten million or more


class LayoutError(ValueError):
    """A malformed or inconsistent layout; the message says what is wrong."""


MAX_SYMBOLS = 1_000_000


def _body(g: re.Match) -> str:
    return g[1][1:-1] if g[1].startswith("(") else g[1]


def _unroll(text: str) -> str:
    out = text.replace(",", "").replace(" ", "")
    if not re.fullmatch(r"[EtmL|()*0-9]*", out):
        bad = sorted(set(re.sub(r"[EtmL|()*0-9]", "", out)))
        raise LayoutError(f"unknown symbol(s) {''.join(bad)!r}: use E (embedding), t (decoder layer), "
                          "m (MTP module), L (loss), | between stages, *N and (...)*N to repeat")
    if _LONG_COUNT.search(out):
        raise LayoutError("expands to more than a million symbols")
    for _ in range(64):
        # the expanded length first (a 19-character layout can ask for terabytes)
        grown = len(out) + sum(len(_body(g)) * int(g[2]) - len(g[0]) for g in _REPEAT.finditer(out))
        if grown > MAX_SYMBOLS:
            raise LayoutError("expands to more than a million symbols")
        new = _REPEAT.sub(lambda g: _body(g) * int(g[2]), out)
        if new == out:
            break
        out = new
    if re.search(r"[()*]", out):
        raise LayoutError("unbalanced parentheses or a '*' without a count")
    return out


def parse(layout: str | list) -> list[list[str]]:
    """The virtual stages of a layout, each a list of the symbols E / t / m / L."""
    if isinstance(layout, str):
        return [list(stage) for stage in _unroll(layout).split("|")]
    stages = []
    for row in layout:
        if not isinstance(row, list):
            raise LayoutError("a list layout must be a list of lists of layer names")
        stage = []
        for name in row:
            key = str(name).strip().lower()
            if key not in NAMES:
                raise LayoutError(f"unknown layer name {name!r}: expected one of {', '.join(NAMES)}")
            stage.append(NAMES[key])
        stages.append(stage)
    return stages


@dataclass(frozen=True)
class StageSplit:
    """A parsed layout on ``pp`` ranks: decoder layers of each rank's model chunks."""

    vpp: int
    chunks: tuple[tuple[int, ...], ...]     # [rank][chunk] -> decoder layers
    mtp_rank: int = -1                      # rank whose last chunk holds the MTP modules (-1: none / last)

    @property
    def stage_layers(self) -> tuple[int, ...]:
        return tuple(sum(c) for c in self.chunks)


def split(layout: str | list, pp: int, num_layers: int, mtp_layers: int) -> StageSplit:
    """Check a layout against the model and the pipeline size; raise LayoutError saying why not."""
    stages = parse(layout)
    if len(stages) % pp:
        raise LayoutError(f"has {len(stages)} stages, not a multiple of pipeline_model_parallel_size={pp}")
    flat = [x for st in stages for x in st]
    if not flat or flat[0] != "E" or flat.count("E") != 1 or "E" not in stages[0]:
        raise LayoutError("must start with the embedding (E), in the first stage, and hold it exactly once")
    if flat[-1] != "L" or flat.count("L") != 1 or "L" not in stages[-1]:
        raise LayoutError("must end with the loss (L), in the last stage, and hold it exactly once")
    if flat.count("t") != num_layers:
        raise LayoutError(f"holds {flat.count('t')} decoder layers (t), the model has num_layers={num_layers}")
    if flat.count("m") != mtp_layers:
        raise LayoutError(f"holds {flat.count('m')} MTP modules (m), the model has mtp_num_layers={mtp_layers}")
    if "m" in flat and "t" in flat[flat.index("m"):]:
        raise LayoutError("decoder layers (t) must all come before the MTP modules (m)")
    vpp = len(stages) // pp
    mtp_rank = -1
    if mtp_layers:
        where = [k for k, st in enumerate(stages) if "m" in st]
        if len(where) > 1:
            raise LayoutError("the MTP modules (m) must sit together in one stage")
        k = where[0]
        if k // pp != vpp - 1:
            raise LayoutError("the MTP modules (m) must sit in the last model chunk of their rank "
                              "(Megatron-Core's restriction)")
        if k % pp == 0 and pp > 1:
            raise LayoutError("the MTP modules (m) must not sit on the first pipeline rank (Megatron-Core)")
        mtp_rank = k % pp if k % pp != pp - 1 else -1
    chunks = tuple(tuple(stages[c * pp + r].count("t") for c in range(vpp)) for r in range(pp))
    return StageSplit(vpp, chunks, mtp_rank)
