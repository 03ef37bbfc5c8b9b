"""torchtitan's published FSDP2 benchmarks (pytorch/torchtitan docs/performance.md @ eaea6f6a) as the
check-only validation source torchtitan-2024: predicted and reported, never fitted on."""
import pytest

from simulator.validation.fit import fit_set, moe_set
from simulator.validation.runner import CHECK_ONLY_SOURCES, cases, load_rows

# (run, tokens/s/GPU as published): Tables 1-6 of the page
PUBLISHED = {
    "tt-llama3.1-8b-8xh100-fsdp-eager": 5762, "tt-llama3.1-8b-128xh100-fsdp-eager": 5605,
    "tt-llama3.1-8b-8xh100-fsdp-compile": 6667, "tt-llama3.1-8b-8xh100-fsdp-compile-float8": 8532,
    "tt-llama3.1-8b-128xh100-fsdp-compile": 6514, "tt-llama3.1-8b-128xh100-fsdp-compile-float8": 8380,
    "tt-llama3.1-8b-8xh100-fsdp8-cp1-32k": 3890, "tt-llama3.1-8b-8xh100-fsdp4-cp2-64k": 2540,
    "tt-llama3.1-8b-8xh100-fsdp2-cp4-128k": 1071, "tt-llama3.1-8b-8xh100-fsdp1-cp8-256k": 548,
    "tt-llama3.1-70b-256xh100-fsdp32-tp8": 829, "tt-llama3.1-70b-256xh100-fsdp32-tp8-asynctp": 876,
    "tt-llama3.1-405b-512xh100-fsdp8-tp8-pp8-1f1b": 100, "tt-llama3.1-405b-512xh100-fsdp8-tp8-pp8-interleaved": 128,
    "tt-llama3.1-405b-512xh100-fsdp8-cp1-tp8-pp8-32k": 76, "tt-llama3.1-405b-512xh100-fsdp4-cp2-tp8-pp8-64k": 47,
    "tt-llama3.1-405b-512xh100-fsdp2-cp4-tp8-pp8-128k": 31, "tt-llama3.1-405b-512xh100-fsdp1-cp8-tp8-pp8-256k": 16,
}


def source_cases(source: str) -> dict:
    """Every row of ``source`` as a Case, by run name; none may be skipped."""
    ok, skipped = cases([r for r in load_rows() if r["source"] == source])
    assert not skipped
    return {c.row["run"]: c for c in ok}


@pytest.fixture(scope="module")
def tt_cases():
    return source_cases("torchtitan-2024")


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
    8,192 tokens, where the attention kernel's rate matters least, is predicted faster than published,
    but for the 70B FSDP32 x TP8 row without async TP, whose exposed sequence-parallel collectives
    put it within 3 % (816 predicted; published 829 here and 809.8 for the same configuration in June
    2025). (The 32K and 64K rows are not: there the FlashAttention-2 ratio decides, docs/validation.md.)"""
    short = {run: c for run, c in tt_cases.items() if "cp" not in run}
    assert len(short) == 10
    for run, c in short.items():
        r = c.predict()
        if run == "tt-llama3.1-70b-256xh100-fsdp32-tp8":
            assert r.predicted == pytest.approx(r.published, rel=0.03)
        else:
            assert r.predicted > r.published, run


def _split_points(layers: int, stages: int) -> list[int]:
    """torchtitan's default stage split, written out by hand from generate_split_points
    (torchtitan/parallelisms/pipelining_utils.py @ 9dec370): the first stage floor(L/S) layers, the
    middle stages one more while the remainder lasts, the last what is left."""
    base, extra = divmod(layers, stages)
    sizes = [base]
    for _ in range(stages - 2):
        sizes.append(base + (1 if extra > 0 else 0))
        extra -= 1 if extra > 0 else 0
    return sizes + [layers - sum(sizes)]


def test_405b_pipeline_rows_run_torchtitans_defaults_and_keep_the_bubble_ratio(tt_cases):
    """Tables 5-6 (405B, 512 GPUs, PP8): torchtitan's default microbatch count (the PP degree) and
    stage split; FSDP2 keeps each stage's parameters gathered for the step under PP. Interleaving two
    stages per rank speeds the step 1.28x as published (100 -> 128 tokens/s/GPU); the model's
    schedule gives that within 5 %."""
    assert _split_points(126, 8) == [15, 16, 16, 16, 16, 16, 16, 15]
    assert _split_points(126, 16) == [7] + [8] * 14 + [7]
    pp_rows = {run: c for run, c in tt_cases.items() if "-pp8" in run}
    assert len(pp_rows) == 6
    for run, c in pp_rows.items():
        lay = c.scenario.layout
        assert lay.num_microbatches == lay.pp == 8 and not lay.reshard_after_forward, run
        assert list(lay.stage_layers) == _split_points(126, 8), run
    inter = pp_rows["tt-llama3.1-405b-512xh100-fsdp8-tp8-pp8-interleaved"]
    assert inter.scenario.layout.vpp == 2
    split = _split_points(126, 16)   # virtual stage k runs on rank k % 8
    assert inter.scenario.layout.chunks == tuple((split[r], split[r + 8]) for r in range(8))
    one = pp_rows["tt-llama3.1-405b-512xh100-fsdp8-tp8-pp8-1f1b"].predict()
    two = inter.predict()
    assert two.published / one.published == pytest.approx(1.28)
    assert two.predicted / one.predicted == pytest.approx(1.28, rel=0.05)


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


# torchtitan's June 2025 async-TP benchmarks (benchmarks/asyncTP_llama3_h100_2025-06_torchtitan.md
# @ 2887250b), bf16 and float8 tensorwise; (vanilla TP, async TP) tokens/s/GPU
PUBLISHED_2025 = {
    ("70b-256xh100-fsdp32-tp8", "bf16"): (597.3, 652.4), ("70b-256xh100-fsdp32-tp8", "float8"): (809.8, 942.4),
    ("8b-64xh100-fsdp8-tp8", "bf16"): (4378, 4809.4), ("8b-64xh100-fsdp8-tp8", "float8"): (5078.1, 5570.1),
}


@pytest.fixture(scope="module")
def tt25_cases():
    return source_cases("torchtitan-2025")


def test_2025_rows_are_the_published_figures_check_only_and_flash_attention_2(tt25_cases):
    assert "torchtitan-2025" in CHECK_ONLY_SOURCES
    every = list(tt25_cases.values())
    assert len(every) == 8 and not fit_set(every) and not moe_set(every)
    for (shape, prec), (vanilla, asynctp) in PUBLISHED_2025.items():
        base = f"tt25-llama3.1-{shape}-{prec}"
        assert float(tt25_cases[base].row["value"]) == vanilla
        assert float(tt25_cases[base + "-asynctp"].row["value"]) == asynctp
    for c in every:
        t, p = c.scenario.workload.training, c.scenario.workload.parallelism
        assert t.attention_kernel == "flash2" and p.zero_stage == 3 and p.tensor_model_parallel_size == 8


def test_2025_async_tp_gain_is_bounded_by_the_full_overlap(tt25_cases):
    """The model hides the TP collectives behind the GEMMs as Transformer Engine's userbuffers do, so
    its gain bounds PyTorch's micro-pipelined async TP from above (published 1.09-1.16x); and every
    row sits above its figure (SXM peaks on a 500 W part)."""
    for shape, prec in PUBLISHED_2025:
        base = f"tt25-llama3.1-{shape}-{prec}"
        vanilla, asynctp = tt25_cases[base].predict(), tt25_cases[base + "-asynctp"].predict()
        assert asynctp.predicted / vanilla.predicted >= asynctp.published / vanilla.published > 1.0
        # each collective hides only behind its own GEMM, one chunk of it exposed: 1.16-1.22x, where
        # hiding behind the whole layer's GEMMs gave 1.19-1.32x (the 8B's qkv and projection GEMMs
        # are shorter than their all-gather and reduce-scatter)
        assert asynctp.predicted / vanilla.predicted < 1.25
        assert vanilla.predicted > vanilla.published and asynctp.predicted > asynctp.published


def test_trainy_h200_rows_fit_flash_attention_2_and_not_the_fused_rate():
    """Trainy's torchtitan Llama 3.1 8B on H200 (benchmarks/llama3-8b_h200_202506_trainy-whitefiber.md
    @ 4a61bd87; a published peak, so a fitted source): within 3 % with FlashAttention-2's rate, which
    its SDPA ran; about 20 % too fast at the fused kernel's."""
    from dataclasses import replace

    from simulator.validation.runner import predict

    ok = list(source_cases("trainy-h200-2025").values())
    assert len(ok) == 2 and "trainy-h200-2025" not in CHECK_ONLY_SOURCES
    assert {float(c.row["value"]) for c in ok} == {10938.0, 10753.0}
    for c in ok:
        assert c.scenario.workload.training.attention_kernel == "flash2"
        assert abs(c.predict().error) < 0.03
        s = c.scenario
        fused = replace(s, workload=s.workload.model_copy(update={
            "training": s.workload.training.model_copy(update={"attention_kernel": "fused"})}))
        assert predict(c.row, scenario=fused).error > 0.15
