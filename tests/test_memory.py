"""Memory per GPU against Korthikanti et al. 2022 (Table 2) and ZeRO's model-state accounting."""
import pytest

from simulator import InfeasibleError, simulate
from simulator.config.workload import ModelConfig
from simulator.model.arch import resolve
from simulator.model.params import count
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.model.memory import (
    RUNTIME_RESERVE_BYTES, activation_bytes_per_layer, in_flight_microbatches, memory_per_gpu,
)
from simulator.model.schedules import peak_live_layers, schedule

s, b, h, a_heads = 2048, 2, 12288, 96
# Korthikanti et al. 2022 count dropout masks: Megatron's default dropout 0.1
GPT175 = resolve(ModelConfig(num_layers=96, hidden_size=h, num_attention_heads=a_heads, vocab_size=51200,
                             seq_length=s, attention_dropout=0.1, hidden_dropout=0.1))


def act(tp=1, sp=False, recompute="none", flash=False):
    return activation_bytes_per_layer(GPT175, b, tp, 1, sp, recompute, flash)


def test_no_parallelism():
    assert act() == pytest.approx(s * b * h * (34 + 5 * a_heads * s / h), rel=1e-12)


@pytest.mark.parametrize("t", [2, 4, 8])
def test_tensor_parallel(t):
    assert act(tp=t) == pytest.approx(s * b * h * (10 + 24 / t + 5 * a_heads * s / (h * t)), rel=1e-12)


@pytest.mark.parametrize("t", [2, 8])
def test_tensor_and_sequence_parallel(t):
    assert act(tp=t, sp=True) == pytest.approx(s * b * h * (34 + 5 * a_heads * s / h) / t, rel=1e-12)


def test_selective_recompute_with_sp():
    assert act(tp=8, sp=True, recompute="selective") == pytest.approx(34 * s * b * h / 8, rel=1e-12)


def test_full_recompute_keeps_only_layer_inputs():
    assert act(recompute="full") == 2 * s * b * h
    assert act(tp=8, sp=True, recompute="full") == 2 * s * b * h / 8


def test_flash_attention_drops_the_score_matrix():
    assert act(flash=True) < act(recompute="selective") * 1.001
    assert act(flash=True) > act(recompute="selective")   # only softmax statistics remain


def test_in_flight_microbatches():
    assert in_flight_microbatches("1f1b", 0, 8, 64, 1) == 8
    assert in_flight_microbatches("1f1b", 7, 8, 64, 1) == 1
    assert in_flight_microbatches("1f1b", 0, 8, 4, 1) == 4     # fewer microbatches than stages
    assert in_flight_microbatches("gpipe", 3, 8, 64, 1) == 64
    # first stage: Korthikanti et al. 2022's p (1 + (p - 1) / (p v))
    assert in_flight_microbatches("interleaved_1f1b", 0, 8, 64, 2) == pytest.approx(8 * (1 + 7 / 16))
    # last stage of p=16, v=2, m=32: (v - 1) p warm-up forwards + 1 = 17 chunk-microbatches
    assert in_flight_microbatches("interleaved_1f1b", 15, 16, 32, 2) == pytest.approx(8.5)
    # m = p: every early stage runs all of its forwards first
    assert in_flight_microbatches("interleaved_1f1b", 1, 16, 16, 2) == pytest.approx(16)


def _replay(tasks, weights):
    live = peak = 0
    for t in tasks:
        if t.kind == "F":
            live += weights[t.chunk]
            peak = max(peak, live)
        elif t.kind == "B":
            live -= weights[t.chunk]
    return peak


@settings(max_examples=150, deadline=None)
@given(p=st.integers(2, 9), groups=st.integers(1, 4), v=st.integers(1, 4), data=st.data())
def test_peak_live_layers_is_the_schedules_peak(p, groups, v, data):
    """Memory's in-flight layers equal a replay of the very task lists the step DES executes."""
    name = data.draw(st.sampled_from(["interleaved_1f1b"] if v > 1 else ["1f1b", "gpipe", "zb_h1"]))
    m = groups * p if v > 1 else data.draw(st.integers(1, 3 * p))
    stage = data.draw(st.integers(0, p - 1))
    weights = tuple(data.draw(st.lists(st.integers(1, 5), min_size=v, max_size=v)))
    assert peak_live_layers(name, p, m, stage, v, weights) == _replay(schedule(name, p, m, stage, v), weights)


def test_stage_memory_matches_the_des_in_flight(scenario):
    """The step DES's own peak in-flight count per stage (its executed tasks) times the chunk layers
    is what the memory model charges."""
    from simulator.engine.iteration import simulate_step
    from simulator.simulate import stage_memory
    sc = scenario("llama3-70b", "parallelism.pipeline_model_parallel_size=4",
                  "parallelism.virtual_pipeline_model_parallel_size=5", "training.global_batch_size=256",
                  "parallelism.recompute_granularity=full", gpus=1024)
    it = simulate_step(sc)
    lay = sc.layout
    per_stage = stage_memory(sc)
    a = resolve(sc.workload.model)
    one = activation_bytes_per_layer(a, lay.micro_batch_size, lay.tp, lay.cp, lay.sequence_parallel, "full",
                                     True)
    work = activation_bytes_per_layer(a, lay.micro_batch_size, lay.tp, lay.cp, lay.sequence_parallel,
                                      "selective", True)
    tokens = lay.micro_batch_size * a.seq
    for i, mb in enumerate(per_stage):
        chunk = lay.chunk_layers(i)[0]
        expected = it.peak_in_flight[i] * chunk * one + work
        if i == 0:
            expected += 2.0 * tokens * a.hidden / lay.tp
        if i == lay.pp - 1:
            expected += tokens * a.vocab / lay.tp * 6
        assert mb.activations == pytest.approx(expected, rel=1e-9)


def _states(zero, dp, grad_dtype="bf16", precision="bf16", **kw):
    m = memory_per_gpu(GPT175, stage_layers=(96,), tp=1, cp=1, ep=1, dp=dp, micro_batch=1,
                       num_microbatches=1, schedule="1f1b", vpp=1, sequence_parallel=False,
                       recompute="full", flash_attention=True, zero_stage=zero, optimizer="adamw",
                       grad_dtype=grad_dtype, precision=precision, **kw)
    return m.weights + m.gradients + m.optimizer, m


@pytest.mark.parametrize("zero,per_param", [(0, lambda d: 16), (1, lambda d: 4 + 12 / d),
                                            (2, lambda d: 2 + 14 / d), (3, lambda d: 16 / d)])
def test_zero_stages_shard_model_states(zero, per_param):
    """ZeRO paper (Rajbhandari et al. 2020, section 3): 2 + 2 + K bytes with K = 12 for mixed-precision
    Adam, optimizer states sharded by stage 1, gradients by 2, parameters by 3 (bf16 gradients)."""
    n = count(GPT175).total
    states, _ = _states(zero, 64)
    assert states == pytest.approx(n * per_param(64), rel=1e-9)


@pytest.mark.parametrize("precision,grad_dtype,plain,dist", [
    ("bf16", "fp32", 18, lambda d: 6 + 12 / d),   # Megatron-LM docs/source/api-guide/dist_optimizer.md
    ("fp16", "fp16", 20, lambda d: 4 + 16 / d),
])
def test_megatron_distributed_optimizer_table(precision, grad_dtype, plain, dist):
    n = count(GPT175).total
    assert _states(0, 64, grad_dtype, precision)[0] == pytest.approx(n * plain, rel=1e-9)
    assert _states(1, 64, grad_dtype, precision)[0] == pytest.approx(n * dist(64), rel=1e-9)


def test_fsdp_resharding_after_forward():
    """ZeRO-3 at rest holds 16/d bytes per parameter; resharding frees each gathered layer after its
    forward (two layers' bf16 weights in flight); without it the whole stage stays gathered."""
    n, d = count(GPT175).total, 64
    _, on = _states(3, d)
    _, off = _states(3, d, reshard_after_forward=False)
    assert on.weights == pytest.approx(2 * n / d, rel=1e-9)
    per_layer = n / 96
    assert on.gather_buffers == pytest.approx(2 * 2 * per_layer + 2 * per_layer, rel=1e-9)
    assert off.weights == pytest.approx(2 * n + 2 * n / d, rel=1e-9)


def test_hsdp_shards_over_the_shard_group_only():
    n = count(GPT175).total
    _, full = _states(3, 64)
    _, hsdp = _states(3, 64, shard_degree=8)
    assert full.optimizer == pytest.approx(12 * n / 64, rel=1e-9)
    assert hsdp.optimizer == pytest.approx(12 * n / 8, rel=1e-9)
    assert hsdp.weights == pytest.approx(2 * n / 8, rel=1e-9)


def test_dropout_free_layer_stores_no_masks():
    """Korthikanti's 34 sbh + 5 as^2 b less the two hidden dropout masks (2 sbh) and, unfused, the
    attention dropout's mask and output (3 as^2 b): 32 sbh + 2 as^2 b."""
    a = resolve(ModelConfig(num_layers=96, hidden_size=h, num_attention_heads=a_heads, vocab_size=51200,
                            seq_length=s))
    got = activation_bytes_per_layer(a, b, 1, 1, False, "none", False)
    assert got == pytest.approx(s * b * h * (32 + 2 * a_heads * s / h), rel=1e-12)


def test_selective_op_recompute_keeps_matmul_outputs():
    """torchtitan's op-level policy keeps the layer input, projection output, Q/K/V, attention output
    and fc1 output: 2h + 2h + 6h + 2h + 8h bytes per token for a GPT layer, plus LSE statistics."""
    got = activation_bytes_per_layer(GPT175, b, 1, 1, False, "selective_op", True)
    assert got == pytest.approx(s * b * h * 20 + 4 * b * a_heads * s, rel=1e-12)


def _stage(**kw):
    args = dict(stage_layers=(96,), tp=8, cp=1, ep=1, dp=8, micro_batch=1, num_microbatches=1,
                schedule="1f1b", vpp=1, sequence_parallel=True, recompute="full", flash_attention=True,
                zero_stage=1, optimizer="adamw")
    args.update(kw)
    return memory_per_gpu(GPT175, **args)


def test_uniform_recompute_groups_store_one_input_per_group():
    one = act(tp=8, sp=True, recompute="full")
    stored = act(tp=8, sp=True, recompute="selective", flash=True)
    base = _stage()
    grouped = _stage(recompute_method="uniform", recompute_num_layers=4)
    extra_in = 2.0 * s * 1 * h / 8     # first-stage embedding output
    logits = s * 51200 / 8 * 6 * 1
    # per microbatch: act() is for b = 2; the stage runs micro batch 1
    assert base.activations == pytest.approx((96 * one + stored) / 2 + extra_in + logits, rel=1e-9)
    assert grouped.activations == pytest.approx((24 * one + 4 * stored) / 2 + extra_in + logits, rel=1e-9)


def test_block_recompute_stores_the_other_layers():
    one = act(tp=8, sp=True, recompute="full") / 2
    stored = act(tp=8, sp=True, recompute="selective", flash=True) / 2
    blk = _stage(recompute_method="block", recompute_num_layers=10)
    extra = 2.0 * s * h / 8 + s * 51200 / 8 * 6
    assert blk.activations == pytest.approx(10 * one + 86 * stored + stored + extra, rel=1e-9)


def test_cpu_offloading_moves_activations_to_host():
    stored = act(tp=8, sp=True, recompute="selective", flash=True) / 2
    base = _stage(recompute="selective")
    off = _stage(recompute="selective", offload_layers=40)
    assert off.offloaded == pytest.approx(40 * stored, rel=1e-9)
    assert base.activations - off.activations == pytest.approx(38 * stored, rel=1e-9)   # 2 buffers stay
    assert off.total < base.total


def test_fp8_keeps_weight_and_transpose_copies():
    plain, fp8 = _stage(), _stage(precision="fp8")
    assert plain.low_precision_weights == 0
    body = 96 * (count(GPT175).total - 51200 * h - 2048 * h) / 96 / 8   # layers' parameters on a GPU
    assert fp8.low_precision_weights == pytest.approx(2 * body, rel=2e-3)


def test_runtime_reserve_is_counted():
    _, m = _states(1, 64)
    assert m.runtime == RUNTIME_RESERVE_BYTES


def test_pipeline_stage_with_logits_can_be_the_peak(scenario):
    from simulator.simulate import memory_of
    s = scenario("llama3-405b")
    assert memory_of(s).total < s.gpu.usable_hbm


def test_bundled_405b_interleaves_and_fits_as_meta_ran_it(scenario):
    """Llama 3 paper section 3.3.2: TP8 CP1 PP16 DP128, interleaved, FSDP without resharding after the
    forward, on 80 GB H100s (usable 81559 MiB)."""
    from simulator.simulate import memory_of
    s = scenario("llama3-405b")
    lay = s.layout
    assert (lay.tp, lay.cp, lay.pp, lay.dp, lay.schedule) == (8, 1, 16, 128, "interleaved_1f1b")
    assert lay.vpp > 1 and lay.zero_stage == 3 and not lay.reshard_after_forward
    assert memory_of(s).total < s.gpu.usable_hbm < s.gpu.hbm_capacity


def test_too_big_is_infeasible_with_breakdown(scenario):
    s = scenario("llama3-405b", "parallelism.pipeline_model_parallel_size=2",
                 "parallelism.decoder_first_pipeline_num_layers=null",
                 "parallelism.decoder_last_pipeline_num_layers=null",
                 "parallelism.virtual_pipeline_model_parallel_size=null",
                 "parallelism.pipeline_model_parallel_layout=null", gpus=2048)
    with pytest.raises(InfeasibleError) as exc:
        simulate(s)
    msg = str(exc.value)
    assert "GiB" in msg and "weights" in msg and "optimizer" in msg and "activations" in msg
    assert exc.value.details["memory_breakdown_gib"]["total"] > 80


def test_kept_pipeline_outputs_add_one_hidden_state_per_in_flight_chunk_forward(scenario):
    """memory.deallocate_pipeline_outputs (Megatron-LM's training default, on): the per-layer
    activations are all a chunk holds. Off, each in-flight forward of a chunk that sends also keeps
    its output, b x s x h bf16 / TP under sequence parallelism: the 405B's stage 1 holds
    min((16 - 1 - 1) x 2 + 7 x 16 + 1, 16 x 8) = 128 chunk-forwards at 16 microbatches."""
    from simulator.simulate import stage_memory
    on = stage_memory(scenario("llama3-405b", "phases=null"))
    explicit = stage_memory(scenario("llama3-405b", "phases=null", "memory.deallocate_pipeline_outputs=true"))
    off = stage_memory(scenario("llama3-405b", "phases=null", "memory.deallocate_pipeline_outputs=false"))
    assert [m.total for m in on] == [m.total for m in explicit]
    out = 2.0 * 1 * 8192 * 16384 / 8
    assert off[1].activations - on[1].activations == pytest.approx(128 * out, rel=1e-12)
    assert all(b.weights == a.weights and b.activations >= a.activations for a, b in zip(on, off))
    # no pipeline: nothing is sent on, nothing kept
    one = scenario("llama3-8b", "memory.deallocate_pipeline_outputs=false")
    assert stage_memory(one)[0].total == stage_memory(scenario("llama3-8b"))[0].total


def test_table4_row1_layout_memory(scenario):
    """Llama 3 Table 4 row 1 (8,192 GPUs, TP8 PP16 DP64, 32 microbatches per rank at 8K, no
    activation checkpointing) ran at Meta; Megatron's accounting (outputs deallocated, N = PP
    microbatches per virtual stage) gives 81.3 GiB on stage 1, 1.7 GiB over an H100's usable 79.6
    (docs/campaign.md: what Meta's schedule does that this does not)."""
    from simulator.model.memory import GIB
    from simulator.simulate import memory_of
    s = scenario("llama3-405b", "phases=null", gpus=8192)
    assert s.layout.num_microbatches == 32 and s.layout.dp == 64
    assert memory_of(s).total / GIB == pytest.approx(81.3, abs=0.05)
