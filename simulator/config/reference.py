"""Generate docs/yaml.md's key tables from the config models, so the reference matches the code.

    python -m simulator.config.reference > docs/yaml.md
"""
from __future__ import annotations

import types
import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from simulator import units
from simulator.config.cluster import ClusterConfig
from simulator.config.gpu import GPUSpec
from simulator.config.model_notes import MODEL_FEATURE_NOTES
from simulator.config.types import Unit
from simulator.config.workload import WorkloadConfig
from simulator.limits import MAX_INT

HEADER = """# YAML reference

Generated from the config models by `python -m simulator.config.reference` (a test keeps it in
sync). Every key is checked: unknown keys, wrong types, wrong units and out-of-range values are
errors (exit 2) naming the file, the key path, the value and what was expected. Quantities are
written with their unit and converted to SI inside; bits (`Gb/s`) and bytes (`GB/s`), decimal
(`GB`) and binary (`GiB`) prefixes are told apart, and a bare number where a unit is required is an
error. Counts accept `K`, `M`, `B`/`G`, `T` suffixes (`15.6T`). Names follow Megatron-LM's
arguments where one exists. A key left out takes the default shown, and is listed under
`assumptions` in `trainsim run --json`. Every integer is at most 10^9 and a file at most 1 MiB
(see "Limits" in docs/usage.md); numbers may be written in YAML 1.2 style (`1e0`, `2.5E-3`).
"""

UNIT_EXAMPLES = {k: units.example(k) for k in units.KINDS}


def _model_of(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _list_model_of(annotation) -> type[BaseModel] | None:
    """The section type of a list of sections (``phases: [{...}, ...]``), else None."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _list_model_of(arg)
            if found:
                return found
    if origin is list:
        (item,) = typing.get_args(annotation) or (None,)
        return item if isinstance(item, type) and issubclass(item, BaseModel) else None
    return None


_NAMES = {int: "integer", float: "number", bool: "true/false", str: "text"}
_SPECIAL = {"_int_or_auto": "positive integer or 'auto'",
            "_duration_or_auto": "duration, e.g. '1 h', or 'auto'"}


def _bounds(metadata) -> str:
    out = []
    for m in metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            v = getattr(m, attr, None)
            if v is not None and not isinstance(m, type) and not (attr == "le" and v == MAX_INT):
                out.append(f"{sym} {v}")
        out += [b for b in (_bounds(getattr(m, "metadata", [])) or "").split(", ") if b]
    return ", ".join(dict.fromkeys(out))


def _describe(annotation, metadata=()) -> str:
    metadata = list(metadata)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        text = " or ".join(_describe(a, metadata) for a in args)
        return text + (" or null" if len(args) < len(typing.get_args(annotation)) else "")
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return _describe(base, metadata + extra)
    for m in metadata:
        if isinstance(m, Unit):
            text = f"{m.kind.replace('_', ' ')}, e.g. {UNIT_EXAMPLES[m.kind]}"
            b = _bounds(metadata)
            return text + (f" ({b})" if b else "")
        func = getattr(getattr(m, "func", None), "__name__", "")
        if func in _SPECIAL:
            return _SPECIAL[func]
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is dict:
        return "mapping"
    text = _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))
    b = _bounds(metadata)
    return text + (f" ({b})" if b else "")


def _type_text(info) -> str:
    return _describe(info.annotation, info.metadata)


def _default_text(info) -> str:
    if info.is_required():
        return "**required**"
    d = info.default
    if d is PydanticUndefined or isinstance(d, BaseModel):
        return "(section)"
    return "null" if d is None else f"`{d}`"


def rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        sub = _model_of(info.annotation)
        path = prefix + name
        item = _list_model_of(info.annotation)
        if item is not None:
            out.append(f"| `{path}` | list of sections, or null | {_default_text(info)} |")
            out += rows(item, path + "[].")
        elif sub is not None:
            out.append(f"| `{path}` | section | {_default_text(info)} |")
            out += rows(sub, path + ".")
        else:
            out.append(f"| `{path}` | {_type_text(info)} | {_default_text(info)} |")
    return out


def document() -> str:
    parts = [HEADER]
    for title, model, note in (
        ("Workload", WorkloadConfig, "`workloads/*.yaml`; override with `--set KEY=VALUE`."),
        ("Cluster", ClusterConfig, "`topologies/*.yaml`; override with `--set cluster.KEY=VALUE`. "
         "`gpu` is a catalog name (`a100-40gb`, `a100-80gb`, `h100-sxm`, `h800`, `h200`, `b200`, `gb200`, "
         "`b300`, `gb300`, `mi300x`, `mi325x`, `mi355x`, `tpu-v5p`, `tpu7x`) or an inline table with the keys of the GPU table below."),
        ("GPU (catalog entry or inline `gpu:` table)", GPUSpec, "`simulator/catalog/gpus.yaml`."),
    ):
        parts.append(f"\n## {title}\n\n{note}\n\n| key | type | default |\n|---|---|---|")
        parts += rows(model)
    parts.append("""
## Cross-key rules (exit 2)

TP must divide attention heads, query groups and the FFN width; PP must divide the layers unless
`decoder_first/last_pipeline_num_layers` give uneven stages or `pipeline_model_parallel_layout`
places every layer; virtual stages must divide the layers per stage and the interleaved schedule
needs a multiple of PP microbatches; the global batch must be
divisible by micro batch × DP; `num_gpus` must be a multiple of TP × PP × CP and at most the
cluster's GPUs; 2 × CP must divide the sequence; EP needs an MoE model, must divide the experts and
DP × CP; `distributed_optimizer: true` is ZeRO-1; FP8 needs a GPU
with FP8 tensor cores; `train_tokens` and `train_iters` are exclusive. Physical consistency: a
GPU's `idle_power` is at most its `tdp`; `train_tokens` is at least one global batch
(`global_batch_size` × `seq_length` tokens); `reliability.spare_nodes` is at most `num_nodes`; the
GPU and fabric figures must give a finite, positive step time.

## Pipeline layout

| key | unit | default | meaning (source) |
|---|---|---|---|
| `parallelism.pipeline_model_parallel_layout` | text, or a list of lists | null (even split, or decoder_first/last) | the layers of each of the PP × VPP virtual stages, in order (virtual stage k runs as chunk k // PP of rank k % PP): `E` embedding, `t` decoder layer, `m` MTP module, `L` loss, `\\|` between stages, `X*N` and `(...)*N` repeat, commas ignored; or lists of `embedding` / `decoder` / `mtp` / `loss` (Megatron-Core `pipeline_model_parallel_layout`, e.g. Megatron-Bridge's DeepSeek-V3 `Et*4\\|(t*4\\|)*14tmL`) |

The layout sets the virtual stages (`virtual_pipeline_model_parallel_size`, if given, must agree)
and excludes `decoder_first/last_pipeline_num_layers`. Exit 2 when the stage count is not a
multiple of PP, the embedding is not first or the loss not last (each exactly once), the decoder
layers are not `num_layers` or the MTP modules not `mtp_num_layers`, a decoder layer follows an MTP
module, the MTP modules are split over stages, sit outside their rank's last model chunk or on the
first rank, or the loss is not in the last stage. MTP modules in a stage of their own ("standalone",
e.g. `Et*3|(tt|)*29,m|L`) are costed on that rank, with a copy of the output projection.
""")
    parts.append(MODEL_FEATURE_NOTES)
    return "\n".join(parts)


if __name__ == "__main__":
    print(document(), end="")
