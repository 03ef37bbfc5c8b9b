"""Workload + cluster + overrides -> one frozen, validated Scenario with its derived layout."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ValidationError

from simulator import catalog
from simulator.config.carbon_profile import read_profile
from simulator.config.cluster import ClusterConfig
from simulator.config.errors import raise_config_error, suggest
from simulator.config.gpu import GPUSpec, catalog_gpu
from simulator.config.loader import blamed, read_yaml, source_finder, validate
from simulator.config.overrides import Override, apply, parse_override
from simulator.config.phases import in_phase, phase_raws
from simulator.config.sanity import check_scenario
from simulator.config.workload import WorkloadConfig
from simulator.errors import ConfigError
from simulator.model.split import balanced_chunks, layer_ids


@dataclass(frozen=True)
class Layout:
    """The parallel layout after defaults and derivations (Megatron order: tp, cp, ep, dp, pp)."""

    tp: int
    pp: int
    vpp: int
    cp: int
    ep: int
    dp: int
    micro_batch_size: int
    num_microbatches: int
    sequence_parallel: bool
    zero_stage: int
    recompute: str
    schedule: str
    stage_layers: tuple[int, ...]
    etp: int = 0                          # expert tensor parallelism (0: the attention's TP)
    shard_degree: int = 0                 # DP ranks model states are sharded over (0: all of DP)
    reshard_after_forward: bool = True    # ZeRO-3/FSDP
    rank_order: str = "tp-cp-dp-pp"       # parallel dimensions over the ranks, innermost first
    grad_dtype: str = "fp32"              # main gradients: accumulation, reduction, optimizer input
    recompute_method: str | None = None   # full recompute: uniform / block (Megatron)
    recompute_num_layers: int | None = None
    # selective recomputation: the Megatron-Core modules that rerun (empty for other granularities)
    recompute_modules: tuple[str, ...] = ()
    offload_layers: int = 0               # layers whose activations go to host memory
    # decoder layers of each stage's model chunks, from pipeline_model_parallel_layout (empty: the
    # stage's layers balanced over its vpp chunks)
    chunks: tuple[tuple[int, ...], ...] = ()
    mtp_stage: int = -1                   # stage holding the MTP modules (-1: the last; a layout's "standalone")

    @property
    def mtp_rank(self) -> int:
        """Pipeline stage whose last chunk runs the multi-token prediction modules."""
        return self.mtp_stage if self.mtp_stage >= 0 else len(self.stage_layers) - 1

    @property
    def expert_tp(self) -> int:
        return self.etp or self.tp

    @property
    def shard(self) -> int:
        """Data-parallel ranks of one model-state shard group (HSDP: fewer than DP)."""
        return self.shard_degree or self.dp

    def chunk_layers(self, stage: int) -> tuple[int, ...]:
        """Layers of each model chunk on ``stage`` (the layout's, else balanced when vpp does not
        divide them)."""
        if self.chunks:
            return self.chunks[stage]
        return balanced_chunks(self.stage_layers[stage], self.vpp)

    def stage_layer_ids(self, stage: int) -> tuple[int, ...]:
        """Model indices of the decoder layers ``stage`` holds (virtual stage k = chunk c of rank r
        with k = c x PP + r holds the k-th run of layers, Megatron's interleaved order)."""
        return self._layer_ids[stage]

    @cached_property
    def _layer_ids(self) -> tuple[tuple[int, ...], ...]:
        """Every stage's layer indices (the layout is frozen: computed once, read per stage)."""
        return layer_ids(tuple(self.chunk_layers(i) for i in range(len(self.stage_layers))))

    @property
    def model_parallel(self) -> int:
        return self.tp * self.pp * self.cp

    def describe(self) -> str:
        parts = [f"TP{self.tp}", f"PP{self.pp}"]
        if self.vpp > 1:
            parts.append(f"VPP{self.vpp}")
        if self.cp > 1:
            parts.append(f"CP{self.cp}")
        if self.ep > 1:
            parts.append(f"EP{self.ep}")
        if self.etp and self.etp != self.tp:
            parts.append(f"ETP{self.etp}")
        parts.append(f"DP{self.dp}")
        if self.shard_degree and self.shard_degree != self.dp:
            parts.append(f"HSDP{self.shard_degree}")
        return " ".join(parts)


@dataclass(frozen=True)
class Scenario:
    workload: WorkloadConfig
    cluster: ClusterConfig
    gpu: GPUSpec
    layout: Layout
    num_gpus: int
    workload_source: str
    cluster_source: str
    assumptions: dict = field(default_factory=dict)
    # training phases in order (config/phases.py): (name, Scenario) each; () = one phase, this one
    phases: tuple = ()

    @property
    def name(self) -> str:
        return self.workload.name


def defaults_used(model: BaseModel, prefix: str = "") -> dict:
    """Every field left at its default, by key path (descending into sections that were given)."""
    out: dict = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if name not in model.model_fields_set:
            if isinstance(value, BaseModel):
                out.update({f"{path}.{k}": v for k, v in value.model_dump().items()})
            else:
                out[path] = value
        elif isinstance(value, BaseModel):
            out.update(defaults_used(value, path + "."))
    return out


def _check_fabric(cluster: ClusterConfig, gpu: GPUSpec, where) -> None:
    """The fabric the cluster describes must be buildable (switch radix, tiers, unit sizes). An error
    on a file key names the cluster's --set overrides with the file (loader.blamed)."""
    from simulator.config.sanity import check_fabric_ratios, check_silent_keys
    from simulator.topology.tiers import tier_tuple

    check_silent_keys(cluster, where)
    check_fabric_ratios(cluster.fabric, where)
    try:
        tier_tuple(cluster, gpu)   # remembered: the cost and power models read the same view
    except ConfigError as exc:
        loc = tuple((exc.path or "fabric").split("."))
        raise ConfigError(str(exc).split(": ", 1)[-1], source=blamed(where, loc), path=".".join(loc)) from None


def _split_overrides(texts: list, gpus: int | None) -> tuple[list[Override], list[Override]]:
    """Workload and cluster overrides of ``--set`` texts (or Overrides that carry the option that
    wrote them, e.g. a sweep's --grid, so that messages name it)."""
    wl, cl = [], []
    for text in texts:
        ov = text if isinstance(text, Override) else parse_override(text)
        if ov.path[0] == "cluster" and len(ov.path) > 1:
            cl.append(Override(ov.path[1:], ov.value, ov.text, label=ov.source))
        else:
            wl.append(ov)
    if gpus is not None:
        wl.append(Override(("num_gpus",), gpus, f"num_gpus={gpus}", label=f"--gpus {gpus}"))
    return wl, cl


def resolve_gpu(cluster: ClusterConfig, where) -> GPUSpec:
    spec = cluster.gpu
    if isinstance(spec, str):
        try:
            return catalog_gpu(spec)
        except KeyError:
            close = catalog.close_matches(spec)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown GPU{hint}", source=where(("gpu",)), path="gpu", value=spec,
                              expected="one of " + ", ".join(catalog.gpu_names()) + " or an inline table")
    try:
        return GPUSpec.model_validate(spec)
    except ValidationError as exc:
        raise_config_error(exc, GPUSpec, where, prefix=("gpu",))
        raise


def build_scenario(wraw: dict, craw: dict, *, workload_source: str, cluster_source: str,
                   overrides: list[str] | None = None, gpus: int | None = None) -> Scenario:
    """Validate raw workload and cluster mappings (as read from YAML) into a Scenario."""
    from simulator.config.layout import derive_layout  # local: layout imports Scenario pieces

    wl_over, cl_over = _split_overrides(list(overrides or []), gpus)
    wcfg = validate(WorkloadConfig, wraw, workload_source, wl_over)
    return _finish(wcfg, wraw, craw, workload_source, cluster_source, wl_over, cl_over, derive_layout)


def _finish(wcfg, wraw, craw, workload_source, cluster_source, wl_over, cl_over, derive_layout) -> Scenario:
    wwhere = source_finder(workload_source, wl_over, wraw)
    ccfg = validate(ClusterConfig, craw, cluster_source, cl_over)
    cwhere = source_finder(cluster_source, cl_over, craw)
    gpu = resolve_gpu(ccfg, cwhere)
    _check_fabric(ccfg, gpu, cwhere)
    if ccfg.prices.carbon_intensity_profile:   # read now: a bad file is an input error before any work
        read_profile(Path(cluster_source).parent / ccfg.prices.carbon_intensity_profile)
    num_gpus, layout = derive_layout(wcfg, ccfg, gpu, wwhere, cwhere)
    check_scenario(wcfg, ccfg, wcfg.model.seq_length, wwhere, cwhere)
    assumptions = {**defaults_used(wcfg), **{f"cluster.{k}": v for k, v in defaults_used(ccfg).items()}}
    phases = ()
    if wcfg.phases:
        phases = _phases(wcfg, apply(wraw, wl_over, workload_source), wwhere, wl_over, ccfg, gpu, cwhere,
                         workload_source, cluster_source, derive_layout)
    return Scenario(wcfg, ccfg, gpu, layout, num_gpus, workload_source, cluster_source, assumptions,
                    phases)


def _phase_overrides(overrides: list[Override], k: int) -> list[Override]:
    """The --set overrides that wrote phase ``k``'s keys, at their paths inside the phase's workload:
    the top level's (every phase inherits them) and ``phases.K.*`` ones."""
    out = [ov for ov in overrides if not ov.path or ov.path[0] != "phases"]
    out += [dataclasses.replace(ov, path=ov.path[2:]) for ov in overrides
            if len(ov.path) > 2 and ov.path[0] == "phases" and ov.path[1] == str(k)]
    return out


def _phases(wcfg, data, wwhere, wl_over, ccfg, gpu, cwhere, workload_source, cluster_source,
            derive_layout) -> tuple:
    """(name, Scenario) of each training phase, validated and derived like a workload file."""
    out = []
    for k, (name, raw) in enumerate(phase_raws(wcfg, data, wwhere)):
        try:
            pcfg = validate(WorkloadConfig, raw, workload_source, [])
            where = source_finder(workload_source, _phase_overrides(wl_over, k), raw)
            n, lay = derive_layout(pcfg, ccfg, gpu, where, cwhere)
            check_scenario(pcfg, ccfg, pcfg.model.seq_length, where, cwhere)
        except ConfigError as exc:
            raise in_phase(exc, k, name) from None
        out.append((name, Scenario(pcfg, ccfg, gpu, lay, n, workload_source, cluster_source,
                                   defaults_used(pcfg))))
    return tuple(out)


def load_scenario(workload: str | Path, *, cluster: str | Path | None = None,
                  overrides: list[str] | None = None, gpus: int | None = None) -> Scenario:
    """Read, merge and validate a workload, its cluster and overrides into a Scenario."""
    from simulator.config.layout import derive_layout

    wpath = Path(workload)
    wl_over, cl_over = _split_overrides(list(overrides or []), gpus)
    wraw = read_yaml(wpath)
    wcfg = validate(WorkloadConfig, wraw, str(wpath), wl_over)
    if cluster is not None:
        cpath = Path(cluster)
    elif wcfg.cluster:
        cpath = wpath.parent / wcfg.cluster
        if not cpath.exists():
            raise ConfigError("cluster file not found", source=source_finder(str(wpath), wl_over, wraw)(("cluster",)),
                              path="cluster", value=wcfg.cluster,
                              expected=f"a YAML file ({cpath} does not exist)")
    else:
        raise ConfigError("no cluster given", source=str(wpath), path="cluster",
                          expected="a `cluster:` path in the workload or --cluster FILE")
    return _finish(wcfg, wraw, read_yaml(cpath), str(wpath), str(cpath), wl_over, cl_over, derive_layout)


__all__ = ["Layout", "Scenario", "build_scenario", "load_scenario", "defaults_used", "suggest"]
