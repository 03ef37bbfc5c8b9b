"""Hand-written notes on the model-feature keys for docs/yaml.md (appended by config/reference.py)."""

MODEL_FEATURE_NOTES = """
## Model features: units, defaults, sources

| key | unit | default | meaning (source) |
|---|---|---|---|
| `model.multi_latent_attention.q_lora_rank` | channels | null (full-rank query) | query low-rank width (DeepSeek-V2/V3 `q_lora_rank`; V3: 1536, V2-Lite: none) |
| `model.multi_latent_attention.kv_lora_rank` | channels | required with MLA | compressed key/value latent (V3: 512) |
| `model.multi_latent_attention.qk_nope_head_dim` | channels | required with MLA | per-head query/key width without position (V3: 128) |
| `model.multi_latent_attention.qk_rope_head_dim` | channels | required with MLA | rotary part, one key shared by all heads (V3: 64) |
| `model.multi_latent_attention.v_head_dim` | channels | required with MLA | per-head value width (V3: 128) |
| `model.qk_layernorm` | - | `false` | a norm over each head's queries and keys (Megatron `--qk-layernorm`; Qwen3) |
| `model.sliding_window` | tokens | null (full attention) | keys each query attends on windowed layers (Hugging Face `sliding_window`; gpt-oss: 128) |
| `model.window_attn_skip_freq` | layers | null (every layer windowed) | N: layer i is full attention when (i + 1) % N == 0 (Megatron `window_attn_skip_freq`; gpt-oss: 2) |
| `model.layer_types` | list | null | per layer `sliding_attention` / `full_attention` (Hugging Face `layer_types`) |
| `model.attention_chunk_size` | tokens | null (no chunking) | chunked attention: on RoPE layers a query attends only the earlier keys of its own chunk (Hugging Face / Megatron-Bridge Llama 4 `attention_chunk_size`: 8192) |
| `model.nope_layer_interval` | layers | null (every layer chunked) | N: layer i has no RoPE and attends the whole causal prefix when (i + 1) % N == 0 (Megatron-Bridge Llama 4 `nope_layer_interval`, Hugging Face `no_rope_layer_interval`: 4) |
| `model.yarn_rotary_scaling_factor` | ratio | null (plain RoPE) | YaRN context extension of RoPE (Megatron-Core `yarn_rotary_scaling_factor`, Hugging Face `rope_scaling.factor`; gpt-oss: 32). With `position_embedding_type: rope` only. When YaRN's attention factor (below) is not 1, Megatron-Core rotates queries and keys with its unfused PyTorch RoPE instead of TE's fused kernel (`rope_utils.py` @ b0cc2706): costed as six full-size memory-bound kernels per tensor forward (12 element accesses per element) and the autograd backward (13), docs/model.md |
| `model.yarn_mscale`, `model.yarn_mscale_all_dim` | exponent | null | YaRN's attention factor (0.1 · mscale · ln(factor) + 1) / (0.1 · mscale_all_dim · ln(factor) + 1), Megatron-Core `_yarn_get_concentration_factor`; either unset: 0.1 · ln(factor) + 1 (gpt-oss: both unset, 1.347). DeepSeek-V3's 1.0 / 1.0 give 1: the fused RoPE |
| `model.softmax_type` | - | `vanilla` | `learnable`: one learned sink logit per head (gpt-oss attention sinks; Megatron `softmax_type`) |
| `model.activation_func_clamp_value` | activation value | null (no clamp) | a gated activation clamps its gate half to ≤ v and its linear half to [−v, v] first (Megatron `activation_func_clamp_value`; gpt-oss: 7.0, Hugging Face `swiglu_limit`). Megatron-Core runs the clamp as eager kernels ahead of the fused activation (two clamps and a concatenation, `megatron/core/fusions/fused_bias_geglu.py` @ 034fd2d3): costed as three memory-bound kernels each way and a clamped copy kept for the backward |
| `model.bias_dropout_fusion` | - | `true` | the bias + dropout + residual add after attention and after the MLP as one fused kernel (Megatron `bias_dropout_fusion`); `false`: one eager kernel each (bias add when biased, dropout when `hidden_dropout` > 0, residual add). Megatron-Core's TEGroupedMLP refuses the fusion with biased experts, so Megatron-Bridge's GPT-OSS provider sets `false` (`megatron/core/transformer/moe/experts.py` @ e8b9df15; `gpt_oss_provider.py` @ 12bc34a8) |
| `model.mtp_num_layers` | modules | `0` | multi-token prediction modules on the last stage (Megatron `--mtp-num-layers`; DeepSeek-V3: 1) |
| `model.moe.moe_layer_freq` | layers, or a 0/1 list | `1` | int k: layer i is MoE when i % k == 0; a list: 1 = MoE layer, one entry per layer (Megatron) |
| `model.moe.first_k_dense_replace` | layers | `0` | the first k layers are dense (Hugging Face DeepSeek `first_k_dense_replace`; V3: 3) |
| `model.moe.moe_shared_expert_intermediate_size` | channels | null | width of the always-on shared expert(s) (Megatron; V3: 2048) |
| `model.moe.moe_grouped_gemm` | - | `true` | local experts as one grouped GEMM (Megatron `--moe-grouped-gemm`, default off there; every published MoE recipe in the validation set turns it on) |
| `model.moe.moe_expert_load_imbalance` | ratio >= 1 | `1.0` | tokens on the busiest EP rank / the mean; applied to expert GEMMs when EP > 1. No published training measurement was found to set a default above 1 |
| `model.moe.moe_router_force_load_balancing` | - | `false` | forced uniform routing (Megatron `--moe-router-force-load-balancing`, used by benchmark recipes): imbalance 1.0 |
| `model.moe.moe_token_dispatcher_type` | - | `alltoall` | `alltoall`: NCCL all-to-all, one copy per routed expert; `flex`: DeepEP-style, one copy per destination scale-up domain over the network, forwarded over NVLink (Megatron `--moe-token-dispatcher-type`; deepseek-ai/DeepEP) |
| `model.moe.moe_router_num_groups` | groups | null | group-limited routing: expert groups (Megatron; DeepSeek-V3 `n_group`: 8) |
| `model.moe.moe_router_group_topk` | groups | null | groups one token may use (DeepSeek-V3 `topk_group`: 4) |
| `parallelism.recompute_matmuls` | - | `none` | with `recompute_granularity: selective_op`, the plain (bf16/fp16) matmuls that rerun too: `every_second` = torchtitan's op-level policy, "all compute ops, except every second mm" saved (k, the output projection and the gated MLP's up projection, or a plain MLP's down projection; their inputs' TP collectives with them; FP8 linears are not counted: they call `_scaled_mm`), pytorch/torchtitan `parallelize_llama.py` `_get_custom_policy` @ 9dec370 / e7c0cae / 820504e2; dense, non-latent models only. Activation memory is not reduced accordingly (an upper bound) |
| `parallelism.recompute_modules` | list | null (`[core_attn]`) | with `recompute_granularity: selective`, the modules whose forward reruns in the backward, by Megatron-Core's names (`TransformerConfig.recompute_modules`): `core_attn` (the attention core; the default), `layernorm` (the input and pre-MLP norms; their outputs are not kept), `moe_act` (the routed experts' activation; fc2's input is not kept), `mla_up_proj` (the MLA up projections and RoPE; Q, K, V are not kept, the latents are), `mlp` (the dense MLP module, its TP collectives with it), `moe` (the whole MoE layer with its all-to-alls; only its input is kept), `shared_experts` (the shared expert MLP). Megatron-Bridge's DeepSeek-V3 recipes use `[mla_up_proj]` or `[moe_act]`, its GPT-OSS ones `[layernorm, moe_act]`; DeepSeek's own run recomputes the norms and MLA up-projections (report Sec. 3.2.3) and the MoE SwiGLU output (Sec. 3.3.3) |
| `training.attention_kernel` | - | `fused` | the fused attention kernel (with `use_flash_attn`): `fused` = the generation's best (cuDNN fused attention or FlashAttention-3, what Transformer Engine runs under Megatron-Core and NeMo; the fitted `attention` efficiency), `flash2` = FlashAttention-2 (PyTorch SDPA's flash backend, the flash-attn 2.x package). `flash2` runs at 0.522 / 0.615 (forward / backward) of `fused` on Hopper (pytorch/pytorch#142132, FlashAttention-3 paper sec. 4.1) and 0.57 on Blackwell (set from torchtitan's published FA2 → cuDNN gain on B200, pytorch/torchtitan#1196), 1.0 on older GPUs (docs/model.md, "Attention kernel") |
| `training.cuda_graph_impl` | - | `none` | CUDA graphs (Megatron-Core `--cuda-graph-impl`): `local` / `transformer_engine` capture the layer scopes of `cuda_graph_scope`, `full_iteration` the whole forward-backward; a captured scope replays as one host launch, so it no longer host-bounds the layer (docs/model.md, "Host launch bound") |
| `training.cuda_graph_scope` | list | `[]` (every scope of each layer) | `attn`, `mlp`, `moe`, `moe_router`, `moe_preprocess` (Megatron-Core `cuda_graph_scope`; dropless MoE recipes capture `attn`, `moe_router`, `moe_preprocess`: Megatron-Bridge `docs/training/cuda-graphs.md`) |
| `parallelism.overlap_moe_expert_parallel_comm` | - | `false` | MoE dispatch/combine overlapped with another microbatch's compute (Megatron-Core `--overlap-moe-expert-parallel-comm`, Megatron-Bridge `moe_a2a_overlap`); only what exceeds the layer's compute shows, and the compute it hides behind loses the 20 SMs the all-to-all holds (docs/model.md) |
| `training.precision` | - | `bf16` | `fp8` / `fp8_cs` / `fp8_ds` (per-tensor FP8), `fp8_mx` (MXFP8), `nvfp4`, `mxfp4` (Megatron-Bridge recipe names): the linear layers run at the catalog's `fp8` / `mxfp8` / `nvfp4` / `mxfp4` peak |
| `peak_flops.mxfp8`, `.nvfp4`, `.mxfp4` | FLOP/s | null | dense block-scaled peaks (datasheets cited in `simulator/catalog/gpus.yaml`) |

Errors (exit 2): an MLA section missing any of its required keys, or combined with `kv_channels`,
`num_query_groups` or `qk_layernorm`; `sliding_window` larger than `seq_length`; `layer_types` or a
`moe_layer_freq` list whose length is not `num_layers`; `window_attn_skip_freq` / `layer_types`
without `sliding_window`, or both given; `nope_layer_interval` without `attention_chunk_size`, or chunks
together with a sliding window; `first_k_dense_replace` leaving no MoE layer; a YaRN key without `position_embedding_type: rope`, or an attention-factor exponent without `yarn_rotary_scaling_factor`; only one of
`moe_router_num_groups` / `moe_router_group_topk`, groups not dividing the experts or more chosen than exist; a load
imbalance below 1 or set together with forced balancing; a precision the GPU has no peak for (the
message names the GPU and the precisions it has); `attention_kernel: flash2` with `use_flash_attn: false`,
or on an accelerator that is neither NVIDIA's nor AMD's; `recompute_matmuls: every_second` without
`recompute_granularity: selective_op`, or on an MoE or latent-attention model; `recompute_modules`
without `recompute_granularity: selective`, empty, naming a module twice or one the model lacks
(`mla_up_proj` without latent attention, `moe_act` / `moe` without MoE layers, `shared_experts`
without shared experts, `mlp` when every layer is MoE).
"""
