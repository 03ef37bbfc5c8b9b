"""Memory per GPU against Korthikanti et al. 2022 (Table 2) and ZeRO's model-state accounting."""
import pytest

from simulator import InfeasibleError, simulate
from simulator.config.workload import ModelConfig
from simulator.model.arch import resolve
from simulator.model.params import count
from simulator.model.memory import (
    RUNTIME_RESERVE_BYTES, activation_bytes_per_layer, in_flight_microbatches, memory_per_gpu,
)

s, b, h, a_heads = 2048, 2, 12288, 96
GPT175 = resolve(ModelConfig(num_layers=96, hidden_size=h, num_attention_heads=a_heads, vocab_size=51200,
                             seq_length=s))


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
    assert in_flight_microbatches("interleaved_1f1b", 0, 8, 64, 2) == pytest.approx(8 * (1 + 7 / 16))


def _states(zero, dp):
    m = memory_per_gpu(GPT175, stage_layers=(96,), tp=1, cp=1, ep=1, dp=dp, micro_batch=1,
                       num_microbatches=1, schedule="1f1b", vpp=1, sequence_parallel=False,
                       recompute="full", flash_attention=True, zero_stage=zero, optimizer="adamw")
    return m.weights + m.gradients + m.optimizer, m


@pytest.mark.parametrize("zero,per_param", [(0, lambda d: 16), (1, lambda d: 4 + 12 / d),
                                            (2, lambda d: 2 + 14 / d), (3, lambda d: 16 / d)])
def test_zero_stages_shard_model_states(zero, per_param):
    n = count(GPT175).total
    states, _ = _states(zero, 64)
    assert states == pytest.approx(n * per_param(64), rel=1e-9)


def test_runtime_reserve_is_counted():
    _, m = _states(1, 64)
    assert m.runtime == RUNTIME_RESERVE_BYTES


def test_pipeline_stage_with_logits_can_be_the_peak(scenario):
    from simulator.simulate import memory_of
    s = scenario("llama3-405b")
    assert memory_of(s).total < s.gpu.hbm_capacity


def test_too_big_is_infeasible_with_breakdown(scenario):
    s = scenario("llama3-405b", "parallelism.pipeline_model_parallel_size=2",
                 "parallelism.decoder_first_pipeline_num_layers=null",
                 "parallelism.decoder_last_pipeline_num_layers=null", gpus=2048)
    with pytest.raises(InfeasibleError) as exc:
        simulate(s)
    msg = str(exc.value)
    assert "GiB" in msg and "weights" in msg and "optimizer" in msg and "activations" in msg
    assert exc.value.details["memory_breakdown_gib"]["total"] > 80
