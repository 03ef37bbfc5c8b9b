"""torchtitan's published FSDP2 benchmarks (pytorch/torchtitan docs/performance.md @ eaea6f6a) as the
check-only validation source torchtitan-2024: predicted and reported, never fitted on."""
import pytest

from simulator.validation.fit import fit_set, moe_set
from simulator.validation.runner import CHECK_ONLY_SOURCES, cases, load_rows

# (run, tokens/s/GPU as published): Tables 1-4 of the page
PUBLISHED = {
    "tt-llama3.1-8b-8xh100-fsdp-eager": 5762, "tt-llama3.1-8b-128xh100-fsdp-eager": 5605,
    "tt-llama3.1-8b-8xh100-fsdp-compile": 6667, "tt-llama3.1-8b-8xh100-fsdp-compile-float8": 8532,
    "tt-llama3.1-8b-128xh100-fsdp-compile": 6514, "tt-llama3.1-8b-128xh100-fsdp-compile-float8": 8380,
    "tt-llama3.1-8b-8xh100-fsdp8-cp1-32k": 3890, "tt-llama3.1-8b-8xh100-fsdp4-cp2-64k": 2540,
    "tt-llama3.1-8b-8xh100-fsdp2-cp4-128k": 1071, "tt-llama3.1-8b-8xh100-fsdp1-cp8-256k": 548,
    "tt-llama3.1-70b-256xh100-fsdp32-tp8": 829, "tt-llama3.1-70b-256xh100-fsdp32-tp8-asynctp": 876,
}


@pytest.fixture(scope="module")
def tt_cases():
    rows = [r for r in load_rows() if r["source"] == "torchtitan-2024"]
    ok, skipped = cases(rows)
    assert not skipped
    return {c.row["run"]: c for c in ok}


def test_rows_are_the_published_figures_and_never_fitted(tt_cases):
    assert "torchtitan-2024" in CHECK_ONLY_SOURCES
    assert {run: float(c.row["value"]) for run, c in tt_cases.items()} == PUBLISHED
    every = list(tt_cases.values())
    assert not fit_set(every) and not moe_set(every)
    for c in every:     # FSDP2: parameters, gradients and optimizer states sharded (ZeRO-3)
        assert c.scenario.workload.parallelism.zero_stage == 3


def test_fsdp_throughput_stays_flat_from_8_to_128_gpus(tt_cases):
    """The published FSDP rows lose 2.3-2.7 % per GPU from 8 to 128 GPUs; the per-layer gathers
    prefetched behind compute keep the prediction within 3 % too (issue 13, symptom 1)."""
    for tail in ("eager", "compile", "compile-float8"):
        small = tt_cases[f"tt-llama3.1-8b-8xh100-fsdp-{tail}"].predict()
        big = tt_cases[f"tt-llama3.1-8b-128xh100-fsdp-{tail}"].predict()
        assert big.predicted / small.predicted == pytest.approx(1.0, abs=0.03)
        assert big.published / small.published == pytest.approx(1.0, abs=0.03)


def test_the_upper_bound_reading_holds_where_attention_is_a_small_share(tt_cases):
    """The cluster carries the SXM peaks, above the part's (between SXM and NVL, 500 W): every row at
    8,192 tokens, where the attention kernel's rate matters least, is predicted faster than published.
    (The 32K and 64K rows are not: there the FlashAttention-2 ratio decides, docs/validation.md.)"""
    short = [c for run, c in tt_cases.items() if "cp" not in run]
    assert len(short) == 8
    for c in short:
        r = c.predict()
        assert r.predicted > r.published, c.run


def test_torchtitan_runs_flash_attention_2_and_long_context_tracks_it(tt_cases):
    """torchtitan's SDPA ran FlashAttention-2 (rows.py cites why). Published, 256K tokens per sequence
    is 7.1x slower per token than 32K (3,890 -> 548 tokens/s/GPU); with FA2's rate the prediction is
    within 20 % of that slowdown (the fused kernel's rate gave 5.3x, 25 % short: issue 13, symptom 7),
    and every context-parallel row within 25 % of its figure."""
    for c in tt_cases.values():
        assert c.scenario.workload.training.attention_kernel == "flash2"
    short = tt_cases["tt-llama3.1-8b-8xh100-fsdp8-cp1-32k"].predict()
    long = tt_cases["tt-llama3.1-8b-8xh100-fsdp1-cp8-256k"].predict()
    published = short.published / long.published
    assert published == pytest.approx(7.1, abs=0.05)
    assert short.predicted / long.predicted == pytest.approx(published, rel=0.2)
    for run, c in tt_cases.items():
        if "-cp" in run:
            assert abs(c.predict().error) < 0.25, run
