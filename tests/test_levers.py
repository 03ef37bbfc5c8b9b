"""Cost levers: optimizer presets, FP8, 2:4 sparsity, and how they compose (fast: closed-form step)."""
import pytest

from simulator import load_scenario, simulate
from simulator.config.scenario import Scenario
from simulator.cost.compute import gemm_rate, op_time, sparse_gemm_speedup
from simulator.cost.efficiency import DEFAULT
from simulator.cost.step import estimate_step
from simulator.errors import ConfigError
from simulator.model.arch import resolve
from simulator.model.memory import memory_per_gpu
from simulator.model.ops import Op
from simulator.model.optimizers import PRESETS, overhead_flops_fraction, steps_factor
from simulator.model.params import dense_layer_params
from tests.conftest import WORKLOADS


def ideal(s: Scenario) -> tuple[float, float, int]:
    """(ideal days, step time, steps) without the campaign."""
    r = simulate(s, engine="analytical", campaign=False)
    return r.ideal_time_to_train_days, r.step_time_s, r.train_steps


# -- optimizer -------------------------------------------------------------------------------------

def test_steps_factor_half_halves_the_failure_free_time(scenario):
    full, t1, n1 = ideal(scenario("llama3-8b", "training.optimizer.steps_factor=1.0"))
    half, t2, n2 = ideal(scenario("llama3-8b", "training.optimizer.steps_factor=0.5"))
    assert t1 == t2                                    # the step itself is unchanged
    assert n2 == -(-n1 // 2)                           # ceil(steps x 0.5)
    assert half / full == pytest.approx(0.5, rel=1e-6)


def test_steps_factor_half_halves_the_des_campaign_too(scenario):
    r1 = simulate(scenario("llama3-8b"), replicas=2)
    r2 = simulate(scenario("llama3-8b", "training.optimizer.steps_factor=0.5"), replicas=2)
    assert r2.ideal_time_to_train_days / r1.ideal_time_to_train_days == pytest.approx(0.5, rel=1e-6)
    assert r2.campaign.time_to_train_days_p50 < 0.55 * r1.campaign.time_to_train_days_p50


def test_presets_have_sources_and_the_papers_figures():
    assert all(p.source for p in PRESETS.values())
    assert PRESETS["sophia"].steps_factor == 0.5 and PRESETS["sophia"].hessian_interval == 10
    assert PRESETS["sophia"].overhead_flops_fraction == pytest.approx(0.05)
    assert {k: p.steps_factor for k, p in PRESETS.items() if k != "sophia"} == dict.fromkeys(
        ("adamw", "adam", "sgd", "adafactor", "lion"), 1.0)
    assert PRESETS["adafactor"].state_bytes < PRESETS["lion"].state_bytes < PRESETS["adamw"].state_bytes


def test_preset_steps_factor_is_the_default_and_the_workload_key_overrides_it(scenario):
    # llama3-8b.yaml writes steps_factor: 1.0 for its AdamW; null restores the preset's figure
    s = scenario("llama3-8b", "training.optimizer.kind=sophia", "training.optimizer.steps_factor=null")
    assert steps_factor(s.workload.training.optimizer) == 0.5
    s = scenario("llama3-8b", "training.optimizer.kind=sophia", "training.optimizer.steps_factor=0.8")
    assert steps_factor(s.workload.training.optimizer) == 0.8
    assert steps_factor(scenario("llama3-8b", "training.optimizer.steps_factor=null").workload.training.optimizer) == 1


def test_sophia_hessian_estimate_is_charged_to_the_optimizer(scenario):
    base = scenario("llama3-70b")
    soph = scenario("llama3-70b", "training.optimizer.kind=sophia")
    b, s = estimate_step(base), estimate_step(soph)
    st, m = s.stages[s.bottleneck_stage], soph.layout.num_microbatches
    # AdamW and Sophia both keep two fp32 states: the difference is the Hessian estimate alone,
    # 0.5 of a step's forward + backward every 10 steps = 5% of the compute (+ recompute) time
    extra = s.breakdown["optimizer"] - b.breakdown["optimizer"]
    assert extra == pytest.approx(0.05 * m * (st.compute + st.recompute), rel=0.02)
    assert s.step_time - b.step_time == pytest.approx(extra, rel=1e-6)
    # the DES charges the stage that finishes last (its first stage under 1F1B), the same 5%
    from simulator.engine.iteration import simulate_step
    d0, d1 = simulate_step(base), simulate_step(soph)
    des_extra = d1.breakdown["optimizer"] - d0.breakdown["optimizer"]
    per_stage = [0.05 * m * (x.compute + x.recompute) for x in s.stages]
    assert min(per_stage) * 0.999 <= des_extra <= max(per_stage) * 1.001
    assert d1.step_time - d0.step_time == pytest.approx(des_extra, rel=0.05)


def test_hessian_interval_and_explicit_overhead(scenario):
    opt = scenario("llama3-8b", "training.optimizer.kind=sophia",
                   "training.optimizer.hessian_interval=20").workload.training.optimizer
    assert overhead_flops_fraction(opt) == pytest.approx(0.025)
    opt = scenario("llama3-8b", "training.optimizer.kind=sophia",
                   "training.optimizer.overhead_flops_fraction=0.1").workload.training.optimizer
    assert overhead_flops_fraction(opt) == 0.1
    with pytest.raises(ConfigError, match="hessian_interval"):
        scenario("llama3-8b", "training.optimizer.hessian_interval=10")


def test_optimizer_state_memory_follows_the_preset(scenario):
    kw = {}
    s = scenario("llama3-8b", "parallelism.distributed_optimizer=false")
    lay = s.layout
    a = resolve(s.workload.model)
    for kind in ("adamw", "lion", "adafactor"):
        kw[kind] = memory_per_gpu(
            a, stage_layers=lay.stage_layers, tp=lay.tp, cp=lay.cp, ep=lay.ep, dp=lay.dp, micro_batch=1,
            num_microbatches=lay.num_microbatches, schedule=lay.schedule, vpp=lay.vpp,
            sequence_parallel=lay.sequence_parallel, recompute=lay.recompute, flash_attention=True,
            zero_stage=lay.zero_stage, optimizer=kind).optimizer
    assert kw["adamw"] / kw["lion"] == pytest.approx(12 / 8) and kw["adamw"] / kw["adafactor"] == pytest.approx(3)


# -- FP8 and 2:4 sparsity --------------------------------------------------------------------------

def test_fp8_on_a100_is_a_clear_config_error():
    with pytest.raises(ConfigError) as err:
        load_scenario(WORKLOADS / "gpt3-175b.yaml", overrides=["training.precision=fp8"])
    text = str(err.value)
    assert "training.precision" in text and "A100" in text and "FP8" in text and "bf16, fp16" in text


def _gpu_without_sparsity() -> str:
    return ("cluster.gpu={name: no-sparse, peak_flops: {bf16: 989 TFLOP/s, fp8: 1979 TFLOP/s}, "
            "hbm_capacity: 80 GiB, hbm_bandwidth: 3.35 TB/s, tdp: 700 W, idle_power: 100 W}")


def test_sparsity_on_a_gpu_without_sparse_tensor_cores_is_a_config_error(scenario):
    assert scenario("llama3-8b", _gpu_without_sparsity()).gpu.sparsity_2to4_speedup == 1.0
    with pytest.raises(ConfigError, match="training.sparsity_2to4.*no 2:4 sparse tensor"):
        scenario("llama3-8b", _gpu_without_sparsity(), "training.sparsity_2to4=true")


def test_fp8_runs_linear_layers_at_the_fp8_rate_and_attention_at_bf16(scenario):
    gpu = scenario("llama3-8b").gpu
    lin = Op("fc1", "gemm", 1e15, 1e6, linear=True)
    attn = Op("flash_attention", "gemm", 1e15, 1e6, attention_core=True)
    speed = gemm_rate(gpu, "fp8", DEFAULT) / gemm_rate(gpu, "bf16", DEFAULT)
    assert speed == pytest.approx(1979 / 989 * DEFAULT.fp8_gemm, rel=1e-3)
    k = DEFAULT.kernel_overhead
    assert (op_time(lin, gpu, "bf16", DEFAULT) - k) / (op_time(lin, gpu, "fp8", DEFAULT) - k) == pytest.approx(speed)
    assert op_time(attn, gpu, "fp8", DEFAULT) == op_time(attn, gpu, "bf16", DEFAULT)


def test_fp8_and_sparsity_multiply_on_a_sparse_linear_gemm(scenario):
    gpu = scenario("llama3-8b").gpu
    k = DEFAULT.kernel_overhead
    dense = Op("fc1", "gemm", 1e15, 1e6, linear=True)
    sparse = Op("fc1", "gemm", 1e15, 1e6, linear=True, sparse=True)
    s = sparse_gemm_speedup(gpu, DEFAULT)
    assert s == pytest.approx(2.0 * 0.65)                  # catalog 2x, 1.3x measured (PyTorch, ViT-L MLP)
    f = gemm_rate(gpu, "fp8", DEFAULT) / gemm_rate(gpu, "bf16", DEFAULT)
    t = {(p, o.sparse): op_time(o, gpu, p, DEFAULT) - k for p in ("bf16", "fp8") for o in (dense, sparse)}
    assert t[("bf16", False)] / t[("bf16", True)] == pytest.approx(s)
    assert t[("bf16", False)] / t[("fp8", True)] == pytest.approx(s * f)


def test_sparsity_and_fp8_each_speed_up_the_step_but_less_than_their_gemm_factor(scenario):
    _, base, _ = ideal(scenario("llama3-8b"))
    _, fp8, _ = ideal(scenario("llama3-8b", "training.precision=fp8"))
    _, sp, _ = ideal(scenario("llama3-8b", "training.sparsity_2to4=true"))
    _, both, _ = ideal(scenario("llama3-8b", "training.precision=fp8", "training.sparsity_2to4=true"))
    assert 1.1 < base / fp8 < 1.4 and 1.05 < base / sp < 1.3      # end to end far below 2x
    # they share the MLP GEMMs: together faster than either, slower than the product of both (Amdahl)
    assert max(base / fp8, base / sp) < base / both < (base / fp8) * (base / sp)


def test_fp8_memory_effect(scenario):
    s = scenario("llama3-8b")
    lay, a = s.layout, resolve(s.workload.model)
    kw = dict(stage_layers=lay.stage_layers, tp=lay.tp, cp=lay.cp, ep=lay.ep, dp=lay.dp, micro_batch=1,
              num_microbatches=lay.num_microbatches, schedule=lay.schedule, vpp=lay.vpp,
              sequence_parallel=lay.sequence_parallel, recompute=lay.recompute, flash_attention=True,
              zero_stage=lay.zero_stage, optimizer="adamw")
    bf, f8 = memory_per_gpu(a, **kw), memory_per_gpu(a, precision="fp8", **kw)
    # + FP8 copies of every layer weight and its transpose (2 bytes per parameter, TP-sharded)
    assert f8.weights == bf.weights
    assert f8.low_precision_weights == pytest.approx(2 * a.num_layers * dense_layer_params(a) / lay.tp)
    # - one byte per saved linear-layer input (QKV and fc1 inputs over SP, projection and fc2 inputs over TP)
    tokens, t = 8192, lay.tp      # one microbatch in flight (PP1), sequence parallel over TP2
    saved = a.num_layers * tokens * (2 * a.hidden / t + a.attn_width / t + a.ffn / t)
    assert bf.activations - f8.activations == pytest.approx(saved)


# -- composition -----------------------------------------------------------------------------------

def test_steps_factor_and_per_step_levers_multiply(scenario):
    base_d, base_t, base_n = ideal(scenario("llama3-8b"))
    step_only = scenario("llama3-8b", "training.optimizer.kind=sophia", "training.optimizer.steps_factor=1",
                         "training.precision=fp8")
    both = scenario("llama3-8b", "training.optimizer.kind=sophia", "training.optimizer.steps_factor=0.5",
                    "training.precision=fp8")
    d1, t1, n1 = ideal(step_only)
    d2, t2, n2 = ideal(both)
    assert t1 == t2 and n2 == -(-base_n // 2)
    assert d2 / base_d == pytest.approx((n2 / base_n) * (t2 / base_t), rel=1e-9)
    assert d2 == pytest.approx(0.5 * d1, rel=1e-6)
    # the Hessian estimate adds 5% of the compute on top of the FP8 step (additive, in seconds)
    e1 = estimate_step(step_only)
    e0 = estimate_step(scenario("llama3-8b", "training.precision=fp8"))
    st = e0.stages[0]
    assert e1.step_time - e0.step_time == pytest.approx(0.05 * step_only.layout.num_microbatches
                                                        * (st.compute + st.recompute), rel=1e-6)
