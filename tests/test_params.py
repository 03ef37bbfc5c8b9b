"""Parameter counts against published figures and against Narayanan et al. 2021, Eq. 2."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.config.workload import ModelConfig
from simulator.model.arch import resolve
from simulator.model.params import count


@pytest.mark.parametrize("name,published", [
    ("llama3-8b", 8.03e9),      # Meta model card: 8.03B
    ("llama3-70b", 70.6e9),     # 70.6B
    ("llama3-405b", 405e9),     # 405B
    ("gpt3-175b", 175e9),       # Brown et al. 2020: 175B
    ("bloom-176b", 176.247e9),  # BigScience: 176,247M
    ("mixtral-8x7b", 46.7e9),   # Jiang et al. 2024: 46.7B total
])
def test_published_parameter_counts(scenario, name, published):
    pc = count(resolve(scenario(name).workload.model))
    assert pc.total == pytest.approx(published, rel=0.01)


def test_mixtral_active_parameters(scenario):
    pc = count(resolve(scenario("mixtral-8x7b").workload.model))
    assert pc.active == pytest.approx(12.9e9, rel=0.01)   # Jiang et al. 2024: 12.9B active


def test_llama3_8b_by_hand(scenario):
    h, f, kv, V, L = 4096, 14336, 1024, 128256, 32
    layer = h * (h + 2 * kv) + h * h + 3 * h * f + 2 * h        # attention + SwiGLU + 2 RMSNorms
    expected = L * layer + 2 * V * h + h                          # untied embeddings + final norm
    assert count(resolve(scenario("llama3-8b").workload.model)).total == expected


@given(layers=st.integers(1, 128), h_per_head=st.sampled_from([64, 128]), heads=st.integers(1, 64),
       vocab=st.integers(1000, 300000), seq=st.sampled_from([512, 2048, 4096]))
def test_gpt_matches_narayanan_eq2(layers, h_per_head, heads, vocab, seq):
    h = h_per_head * heads
    m = ModelConfig(num_layers=layers, hidden_size=h, num_attention_heads=heads, vocab_size=vocab,
                    seq_length=seq)
    # Eq. 2 leaves out the final LayerNorm (2h)
    expected = 12 * layers * h * h * (1 + 13 / (12 * h) + (vocab + seq) / (12 * layers * h)) + 2 * h
    assert count(resolve(m)).total == pytest.approx(expected, rel=1e-12)
