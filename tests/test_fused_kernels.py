"""FP8 attention (training.fp8_attention) and Transformer Engine's fused grouped MLP
(model.moe.moe_fused_grouped_mlp): what each changes in the op model, by hand, and the clear errors
where the precision or the GPU cannot run them."""
from __future__ import annotations

from dataclasses import replace

import pytest

from simulator import load_scenario
from simulator.cli import main
from simulator.config.errors import ConfigError
from simulator.cost.compute import QUANTIZE_SUFFIX, gemm_rate, op_time, quantize_ops
from simulator.cost.efficiency import DEFAULT
from simulator.cost.stage import shard_of
from simulator.model.arch import resolve
from simulator.model.ops import layer_ops
from tests.conftest import ROOT, WORKLOADS

GB200 = ROOT / "topologies" / "gb200-nvl72.yaml"


def _scenario(workload: str, *overrides: str, cluster=GB200):
    return load_scenario(WORKLOADS / workload, cluster=cluster, overrides=list(overrides))


def _ops(s, moe: bool = False):
    ops = layer_ops(resolve(s.workload.model), shard_of(s), moe=moe)
    return {o.name: o for o in ops}, ops


def test_fp8_attention_runs_the_core_at_the_fp8_rate_and_casts_its_inputs():
    base = _scenario("llama3-8b.yaml", "training.precision=fp8_cs")
    fp8 = _scenario("llama3-8b.yaml", "training.precision=fp8_cs", "training.fp8_attention=true")
    (b, _), (f, _) = _ops(base), _ops(fp8)
    assert set(f) == set(b) | {"attention_fp8_cast"}
    core_b, core_f = b["flash_attention"], f["flash_attention"]
    assert core_f.fp8 and not core_b.fp8 and core_f.flops == core_b.flops
    gpu = fp8.gpu
    # the matmul part scales by the FP8 / BF16 GEMM rates; the softmax exponentials (SFU) do not
    sfu = core_b.exps / gpu.sfu_exp_rate
    mm_b = op_time(core_b, gpu, "fp8_cs", DEFAULT) - DEFAULT.kernel_overhead - sfu
    mm_f = op_time(core_f, gpu, "fp8_cs", DEFAULT) - DEFAULT.kernel_overhead - sfu
    assert mm_b / mm_f == pytest.approx(gemm_rate(gpu, "fp8", DEFAULT) / gemm_rate(gpu, "bf16", DEFAULT), rel=1e-9)
    # the cast: 5 bytes per element of q, k and v (8,192 tokens, TP2: 2,048 + 2 x 512 channels per GPU)
    T = 8192
    cast = f["attention_fp8_cast"]
    assert cast.kind == "memory" and cast.attention_core
    assert cast.bytes == pytest.approx(5 * T * (2048 + 2 * 512))
    assert cast.bytes * cast.bwd_factor == pytest.approx(5 * T * 2048)      # the output gradient
    assert main_step(fp8) < main_step(base)


def main_step(s) -> float:
    from simulator.cost.step import estimate_step
    return estimate_step(s).step_time


def test_fused_grouped_mlp_drops_the_activation_bias_kernels_and_two_casts():
    args = ("gpt-oss-120b.yaml", "training.precision=fp8_mx", "parallelism.expert_model_parallel_size=8")
    base, fused = _scenario(*args), _scenario(*args, "model.moe.moe_fused_grouped_mlp=true")
    (b, b_ops), (f, f_ops) = _ops(base, moe=True), _ops(fused, moe=True)
    gone = {"expert_act_clamp", "expert_act_clamp_cat", "expert_activation", "expert_fc2_bias",
            "expert_fc2_bias_cat"}
    assert gone <= set(b) and not gone & set(f)
    fc1, fc2 = f["expert_fc1"], f["expert_fc2"]
    local = 128 // 8
    assert fc1.one_kernel and fc1.launches == 1 and fc1.group == local and b["expert_fc1"].launches == local
    assert fc1.flops == b["expert_fc1"].flops and fc2.flops == b["expert_fc2"].flops
    q_b = {o.name: o for o in quantize_ops(b_ops, "fp8_mx")}
    q_f = {o.name: o for o in quantize_ops(f_ops, "fp8_mx")}
    m, k, n = fc2.shape
    per = 2 * 1 + 2 * (1 + 1 / 32)     # MXFP8: read bf16, write both orientations with E8M0 scales
    # fc2's input is quantised in fc1's epilogue: only its weight is left (one microbatch here)
    assert q_f["expert_fc2" + QUANTIZE_SUFFIX].bytes == pytest.approx(per * k * n * local)
    assert q_b["expert_fc2" + QUANTIZE_SUFFIX].bytes == pytest.approx(per * (m * k + k * n) * local)
    # fc1's output gradient is quantised in fc2's data-gradient epilogue: no backward cast
    assert q_f["expert_fc1" + QUANTIZE_SUFFIX].bwd_factor == 0.0
    assert main_step(fused) < main_step(base)


@pytest.mark.parametrize("overrides, key", [
    (["training.fp8_attention=true"], "training.fp8_attention"),                           # bf16
    (["training.precision=fp8_cs", "training.fp8_attention=true", "training.use_flash_attn=false"],
     "training.fp8_attention"),
    (["training.precision=fp8_cs", "model.moe.moe_fused_grouped_mlp=true"], "model.moe.moe_fused_grouped_mlp"),
    (["training.precision=fp8_mx", "model.moe.moe_fused_grouped_mlp=true", "model.moe.moe_grouped_gemm=false"],
     "model.moe.moe_fused_grouped_mlp"),
])
def test_unsupported_combinations_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        _scenario("qwen3-30b-a3b.yaml", *overrides)


def test_fused_grouped_mlp_on_hopper_exits_2_naming_the_gpu(capsys):
    rc = main(["run", str(WORKLOADS / "qwen3-30b-a3b.yaml"), "--set", "training.precision=fp8_cs",
               "--set", "model.moe.moe_fused_grouped_mlp=true"])
    err = capsys.readouterr().err
    assert rc == 2 and "moe_fused_grouped_mlp" in err and "H100" in err and "Traceback" not in err


def test_the_features_default_off_and_leave_every_op_alone():
    s = _scenario("qwen3-30b-a3b.yaml", "training.precision=fp8_mx")
    a, sh = resolve(s.workload.model), shard_of(s)
    assert not a.fused_grouped_mlp and not sh.fp8_attention
    assert layer_ops(a, sh, moe=True) == layer_ops(a, replace(sh, fp8_attention=False), moe=True)


def test_fp8_attention_on_a_gpu_without_fp8_tensor_cores_names_the_gpu(tmp_path):
    """A catalog entry with block formats but no per-tensor FP8 peak (a hypothetical part): exit-2
    error naming the GPU, never a traceback from a missing rate."""
    from simulator.config.loader import read_yaml
    import yaml
    raw = read_yaml(ROOT / "topologies" / "grand-teton-h100-96gb.yaml")
    raw["gpu"]["peak_flops"] = {"bf16": "989 TFLOP/s", "fp16": "989 TFLOP/s", "mxfp8": "1979 TFLOP/s"}
    raw["gpu"]["name"] = "FP8-less part"
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="FP8-less part"):
        _scenario("llama3-8b.yaml", "training.precision=fp8_mx", "training.fp8_attention=true", cluster=path)
