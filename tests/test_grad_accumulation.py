"""DeepSpeed-style gradient handling: the unfused accumulation pass (parallelism.grad_accumulation),
ZeRO-1 over an unsharded gradient (parallelism.grad_reduce_op) and the tied embedding's gradient
all-reduce between the first and the last pipeline stage."""
from pathlib import Path

import pytest

from simulator.config.scenario import load_scenario
from simulator.cost import comm
from simulator.cost.efficiency import DEFAULT
from simulator.cost.stage import accumulation_bytes, grad_accumulation_time, stage_parts
from simulator.cost.step import dp_cost, estimate_step, tied_embedding_reduce
from simulator.engine.iteration import simulate_step
from simulator.errors import ConfigError

WORKLOADS = Path(__file__).resolve().parents[1] / "workloads"

# one BLOOM-176B transformer block, 12 h^2 + 13 h at h = 14336 (tr11-176B-ml README.md, "Sizes of
# each layer": 2_466_437_120 params); a middle stage holds 6 of them, split over TP4
BLOCK = 12 * 14336**2 + 13 * 14336
assert BLOCK == 2_466_437_120
MIDDLE = 6 * BLOCK / 4


@pytest.fixture(scope="module")
def bloom():
    return lambda *o: load_scenario(WORKLOADS / "bloom-176b.yaml", overrides=["phases=null", *o])


def test_accumulation_bytes_by_hand():
    # unfused: read the bf16 gradient (2), read + write the fp32 main gradient (8)
    assert accumulation_bytes("unfused", 4.0) == 10.0
    # cast first: read bf16 (2), write the fp32 temporary (4), read it and the main grad, write (12)
    assert accumulation_bytes("unfused_cast", 4.0) == 18.0
    assert accumulation_bytes("unfused", 2.0) == 6.0      # bf16 main gradients
    assert accumulation_bytes("unfused_cast", 2.0) == 6.0  # .to(bf16) of a bf16 tensor: no cast
    assert accumulation_bytes("fused", 4.0) == 0.0


def test_bloom_middle_stage_pass_by_hand(bloom):
    s = bloom()
    assert s.workload.parallelism.grad_accumulation == "unfused_cast"
    assert s.workload.training.cuda_launch_blocking
    # 3.70e9 parameters x 18 B at 2,039 GB/s x the fitted memory efficiency (~45 ms), plus two
    # kernels (cast, add) for each of 6 layers x 12 tensors (qkv, projection, fc1, fc2: weight and
    # bias; two LayerNorms: scale and shift), each with its launch gap and, launch-blocking, its
    # host launch on top
    kernels = 2 * 6 * 12
    eff = DEFAULT.with_(kernel_overhead=1e-5, host_launch=3e-5)
    hbm = MIDDLE * 18 / (2039e9 * eff.memory)
    want = hbm + kernels * (1e-5 + 3e-5)
    assert grad_accumulation_time(s, 1, eff) == pytest.approx(want, rel=1e-12)
    assert 0.035 < hbm < 0.05
    # queued launches hide behind the pass
    queued = bloom("training.cuda_launch_blocking=false")
    assert grad_accumulation_time(queued, 1, eff) == pytest.approx(hbm + kernels * 1e-5, rel=1e-12)
    assert grad_accumulation_time(bloom("parallelism.grad_accumulation=fused"), 1, eff) == 0.0
    unfused = grad_accumulation_time(bloom("parallelism.grad_accumulation=unfused"), 1, eff)
    assert unfused == pytest.approx(hbm * 10 / 18 + kernels / 2 * (1e-5 + 3e-5), rel=1e-12)


def test_param_tensors_of_the_edge_stages(bloom):
    from simulator.cost.stage import stage_param_tensors
    s = bloom()
    # first: 5 layers, the word embedding and its LayerNorm (2); last: 5 layers, the final
    # LayerNorm (2) and its copy of the tied embedding
    assert stage_param_tensors(s, 0) == 5 * 12 + 1 + 2
    assert stage_param_tensors(s, 11) == 5 * 12 + 2 + 1
    assert stage_param_tensors(s, 1) == 6 * 12


def test_pass_runs_once_per_microbatch_in_the_backward(bloom):
    fused, cast = bloom("parallelism.grad_accumulation=fused"), bloom()
    tiers = comm.tiers_of(cast.cluster, cast.gpu, DEFAULT, cast.num_gpus)
    pf, pc = stage_parts(fused, DEFAULT, tiers)[1], stage_parts(cast, DEFAULT, tiers)[1]
    acc = grad_accumulation_time(cast, 1, DEFAULT)
    assert pc.total.bwd == pytest.approx(pf.total.bwd + acc)
    assert pc.total.fwd == pytest.approx(pf.total.fwd)
    assert pc.total.total == pytest.approx(pf.total.total + acc)
    est = estimate_step(cast)
    m = cast.layout.num_microbatches
    slow = est.stages[est.bottleneck_stage]
    assert est.breakdown["grad_accum"] == pytest.approx(m * slow.accum)
    assert "grad_accum" not in estimate_step(fused).breakdown
    assert sum(est.breakdown.values()) == pytest.approx(est.step_time)
    des = simulate_step(cast)
    assert des.step_time == pytest.approx(est.step_time, rel=0.02)
    assert des.breakdown["grad_accum"] == pytest.approx(est.breakdown["grad_accum"], rel=0.01)
    assert sum(des.breakdown.values()) == pytest.approx(des.step_time, rel=1e-9)


def test_zero1_all_reduce_moves_the_whole_fp32_gradient(bloom):
    rs, ar = bloom("parallelism.grad_reduce_op=reduce_scatter"), bloom()
    tiers = comm.tiers_of(ar.cluster, ar.gpu, DEFAULT, ar.num_gpus)
    dp = comm.Group.of("dp", ar.layout)
    assert dp_cost(ar, 1, tiers).grad == pytest.approx(comm.all_reduce(dp, MIDDLE * 4, tiers))
    assert dp_cost(rs, 1, tiers).grad == pytest.approx(comm.reduce_scatter(dp, MIDDLE * 4, tiers))
    # a ring all-reduce is a reduce-scatter and an all-gather: twice the bytes of a large buffer
    assert dp_cost(ar, 1, tiers).grad == pytest.approx(2 * dp_cost(rs, 1, tiers).grad, rel=0.01)
    assert dp_cost(ar, 1, tiers).gather == dp_cost(rs, 1, tiers).gather   # the bf16 shards either way


@pytest.mark.parametrize("zero", ["0", "3"])
def test_all_reduce_needs_zero1(bloom, zero):
    with pytest.raises(ConfigError) as e:
        bloom(f"parallelism.zero_stage={zero}")
    assert e.value.path == "parallelism.grad_reduce_op"


def test_tied_embedding_all_reduce_by_hand(bloom):
    s = bloom()
    tiers = comm.tiers_of(s.cluster, s.gpu, DEFAULT, s.num_gpus)
    # stage 0 and stage 11 of one pipeline are 11 x TP x DP = 352 ranks apart; each GPU holds
    # vocab / TP rows of fp32 gradients
    pair = comm.Group(2, 4 * 8 * 11)
    want = comm.all_reduce(pair, 250680 * 14336 / 4 * 4, tiers)
    assert tied_embedding_reduce(s, 0, tiers) == pytest.approx(want)
    assert tied_embedding_reduce(s, 11, tiers) == pytest.approx(want)
    assert tied_embedding_reduce(s, 5, tiers) == 0.0
    # 3.6 GB over the pair's inter-node link: about half a second on Jean Zay's Omni-Path
    assert 0.3 < want < 1.0
    untied = bloom("model.untie_embeddings_and_output_weights=true")
    assert tied_embedding_reduce(untied, 0, tiers) == 0.0
    assert dp_cost(s, 0, tiers).tied == pytest.approx(want)


def test_bf16_main_gradients_need_no_cast(bloom):
    """With bf16 main gradients the cast is a no-op: unfused_cast costs what unfused does."""
    cast = bloom("training.grad_dtype=bf16")
    plain = bloom("training.grad_dtype=bf16", "parallelism.grad_accumulation=unfused")
    assert grad_accumulation_time(cast, 1, DEFAULT) == grad_accumulation_time(plain, 1, DEFAULT) > 0
