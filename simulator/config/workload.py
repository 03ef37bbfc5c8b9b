"""Schema of a workload YAML: model architecture, training recipe, parallel layout, checkpointing.

Key names follow Megatron-LM's command-line arguments where one exists (tensor_model_parallel_size,
num_query_groups, ffn_hidden_size, ...). Defaults are Megatron-LM's defaults unless a comment says why.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, create_model

from simulator import units
from simulator.limits import MAX_LAYERS

from simulator.config.types import (
    Bandwidth, Duration, DurationOrAuto, IntOrAuto, Label, NonNegFloat, NonNegInt, PosFloat, PosInt, Size, Strict,
    Tokens,
)

Dropout = Annotated[float, BeforeValidator(units.parser("ratio")), Field(ge=0, lt=1)]


class MoEConfig(Strict):
    num_experts: PosInt
    moe_router_topk: PosInt = 2
    moe_ffn_hidden_size: PosInt | None = None          # default: the model's ffn_hidden_size
    # an int k: layer i is an MoE layer when i % k == 0 (Megatron-LM); a list of 0/1 per layer
    # (Megatron's "([0]*3+[1]*58)" pattern, written out), 1 = MoE layer
    moe_layer_freq: PosInt | list[Literal[0, 1]] = 1
    # Hugging Face DeepSeek name: the first k layers are dense, then the moe_layer_freq pattern
    first_k_dense_replace: NonNegInt = 0
    moe_shared_expert_intermediate_size: PosInt | None = None
    # local experts run as one grouped GEMM (Megatron --moe-grouped-gemm). Megatron's default is off;
    # on here because every published MoE training recipe in the validation set turns it on
    moe_grouped_gemm: bool = True
    # Transformer Engine's fused grouped MLP (its operation fuser: Megatron-Core
    # use_transformer_engine_op_fuser, Megatron-Bridge's cutedsl_fused_grouped_mlp): the grouped fc1
    # GEMM applies the gated activation, the routing-probability scaling and fc2's input quantisation
    # in its epilogue, and fc2's data-gradient GEMM the activation's backward
    # (transformer_engine/pytorch/ops/fused/grouped_mlp.py @ d0067d0d). Block-scaled formats (fp8_mx,
    # nvfp4) on Blackwell only, with grouped GEMMs and a gated (or squared-ReLU) activation
    moe_fused_grouped_mlp: bool = False
    # tokens on the busiest expert-parallel rank / mean tokens per rank (>= 1), when EP > 1
    moe_expert_load_imbalance: PosFloat = 1.0
    # Megatron --moe-router-force-load-balancing: routing forced uniform (imbalance 1.0)
    moe_router_force_load_balancing: bool = False
    # Megatron dispatcher: "alltoall" (NCCL all-to-all, one copy per routed expert) or "flex" with
    # DeepEP (one copy per destination node over the network, forwarded over NVLink)
    moe_token_dispatcher_type: Literal["alltoall", "flex"] = "alltoall"
    # group-limited routing (DeepSeek-V3: 8 groups = nodes, each token on at most 4)
    moe_router_num_groups: PosInt | None = None
    moe_router_group_topk: PosInt | None = None


class MLAConfig(Strict):
    """Multi-head latent attention (DeepSeek-V2/V3); Hugging Face DeepSeek config names."""

    q_lora_rank: PosInt | None = None                   # None: a full-rank query projection (V2-Lite)
    kv_lora_rank: PosInt
    qk_nope_head_dim: PosInt
    qk_rope_head_dim: PosInt
    v_head_dim: PosInt


class ModelConfig(Strict):
    num_layers: Annotated[int, Field(gt=0, le=MAX_LAYERS)]   # limits.py
    hidden_size: PosInt
    ffn_hidden_size: PosInt | None = None               # Megatron default: 4 x hidden_size
    num_attention_heads: PosInt
    num_query_groups: PosInt | None = None              # GQA; default: num_attention_heads (MHA)
    kv_channels: PosInt | None = None                   # default: hidden_size / num_attention_heads
    vocab_size: PosInt
    seq_length: PosInt
    activation: Literal["gelu", "swiglu", "relu", "squared_relu"] = "gelu"
    normalization: Literal["layernorm", "rmsnorm"] = "layernorm"
    position_embedding_type: Literal["learned_absolute", "rope", "alibi", "none"] = "learned_absolute"
    untie_embeddings_and_output_weights: bool = False
    add_bias_linear: bool = True
    add_qkv_bias: bool | None = None                    # default: add_bias_linear
    embedding_layernorm: bool = False                   # BLOOM normalises the embedding output
    qk_layernorm: bool = False                          # a norm on each head's queries and keys (Qwen3)
    # multi-head latent attention: q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim,
    # v_head_dim (replaces kv_channels / num_query_groups for the attention shapes)
    multi_latent_attention: MLAConfig | None = None
    # sliding-window attention: keys each query sees (Hugging Face sliding_window, Mistral / GPT-OSS)
    sliding_window: PosInt | None = None
    # which layers use the window: Megatron window_attn_skip_freq, an int N = one full-attention layer
    # after every N-1 windowed layers (layer i is full when (i + 1) % N == 0); default all windowed
    window_attn_skip_freq: PosInt | None = None
    # or per layer, Hugging Face layer_types: "sliding_attention" / "full_attention"
    layer_types: list[Literal["sliding_attention", "full_attention"]] | None = None
    # chunked attention (Llama 4 iRoPE; Hugging Face / Megatron-Bridge attention_chunk_size): on the
    # RoPE layers each query attends only to the earlier keys of its own chunk of this many tokens
    attention_chunk_size: PosInt | None = None
    # NoPE layers (Megatron-Bridge Llama 4 nope_layer_interval, Hugging Face no_rope_layer_interval):
    # layer i has no rotary embedding and attends the whole causal prefix when (i + 1) % N == 0
    nope_layer_interval: PosInt | None = None
    # Megatron-Core activation_func_clamp_value: a gated activation clamps its gate half to <= v and its
    # linear half to [-v, v] first (GPT-OSS: 7.0). Megatron runs the clamp as eager PyTorch kernels
    # ahead of the fused activation (two clamps and a concatenation; cost/compute.py, docs/model.md)
    activation_func_clamp_value: PosFloat | None = None
    # YaRN context extension of RoPE (Megatron-Core position_embedding_type "yarn", Hugging Face
    # rope_scaling type yarn): the scaling factor and the two attention-factor exponents (GPT-OSS: 32,
    # unset, unset). A concentration factor other than 1 makes Megatron-Core rotate queries and keys
    # with its unfused PyTorch RoPE (model.arch.yarn_concentration, docs/model.md)
    yarn_rotary_scaling_factor: PosFloat | None = None
    yarn_mscale: NonNegFloat | None = None
    yarn_mscale_all_dim: NonNegFloat | None = None
    # "learnable": a learned per-head sink logit in the softmax (GPT-OSS attention sinks)
    softmax_type: Literal["vanilla", "off-by-one", "learnable"] = "vanilla"
    # multi-token prediction modules after the last layer (DeepSeek-V3: 1), Megatron --mtp-num-layers
    mtp_num_layers: Annotated[int, Field(ge=0, le=MAX_LAYERS)] = 0
    moe: MoEConfig | None = None
    # Dropout probabilities (Megatron names). Megatron-LM's command-line default is 0.1 for both, which
    # GPT-3/BLOOM-era configs used; Llama, Mixtral, Qwen and DeepSeek recipes train with 0, and with
    # p = 0 PyTorch draws no mask and stores none. Default 0 here: set 0.1 for GPT-era models.
    attention_dropout: Dropout = 0.0
    hidden_dropout: Dropout = 0.0
    # Megatron-Core bias_dropout_fusion: the bias add, dropout and residual add after the attention
    # projection and after the MLP run as one fused kernel (Megatron's default, true). false: eager
    # PyTorch ops, one kernel each (bias add when the layer has biases, dropout when hidden_dropout > 0,
    # residual add): more HBM passes and launches. Megatron-Bridge's GPT-OSS provider sets false
    # (src/megatron/bridge/models/gpt_oss/gpt_oss_provider.py @ 12bc34a8).
    bias_dropout_fusion: bool = True


class OptimizerConfig(Strict):
    kind: Literal["adamw", "adam", "sgd", "adafactor", "lion", "sophia"] = "adamw"
    # 0.5 = reaches the same loss in half the steps; default: the preset's published figure
    # (1.0, except sophia 0.5: Liu et al. 2023), see simulator/model/optimizers.py and docs/levers.md;
    # at most 100 (published optimizer comparisons stay within 0.3-3x: an upper bound against typos)
    steps_factor: Annotated[PosFloat, Field(le=100)] | None = None
    hessian_interval: PosInt | None = None              # sophia: steps between Hessian estimates (10)
    # extra FLOPs per step as a fraction of the step's forward + backward (e.g. the Hessian estimate);
    # default: the preset's (sophia 0.5 / hessian_interval = 0.05, others 0)
    overhead_flops_fraction: NonNegFloat | None = None


class TrainingConfig(Strict):
    global_batch_size: PosInt                           # sequences per step
    train_tokens: Tokens | None = None
    train_iters: PosInt | None = None
    # fp8 / fp8_cs (per-tensor current scaling), fp8_mx (MXFP8 blocks), nvfp4, mxfp4: the linear layers
    # run in that format (simulator/model/precision.py), the rest in bf16
    precision: Literal["bf16", "fp16", "fp8", "fp8_cs", "fp8_ds", "fp8_mx", "nvfp4", "mxfp4"] = "bf16"
    # dtype of the gradients accumulated over microbatches and reduced over data parallelism (the
    # "main grads"); memory, DP traffic and the optimizer pass all read it. Default (null): fp32 under
    # bf16/fp8 -- Megatron-LM forces fp32 accumulation and all-reduce for bf16
    # (--accumulate-allreduce-grads-in-fp32, Megatron-Core DDP grad_reduce_in_fp32), Llama 3 reduces in
    # fp32 (paper section 3.3.4) -- and fp16 under fp16 (Megatron keeps an fp32 copy in the optimizer).
    grad_dtype: Literal["fp32", "bf16", "fp16"] | None = None
    optimizer: OptimizerConfig = OptimizerConfig()
    use_flash_attn: bool = True                         # fused attention: no s x s matrix in HBM
    # which fused attention kernel runs (with use_flash_attn): fused = the generation's best kernel
    # (cuDNN fused attention / FlashAttention-3 on Hopper, cuDNN on Blackwell: what Transformer
    # Engine picks under Megatron-Core and NeMo; the efficiencies were fitted on it) or flash2 =
    # FlashAttention-2 (the flash-attn 2.x package; PyTorch SDPA's flash backend, its default on
    # Hopper until cuDNN attention became the default, pytorch/pytorch#138522), which does not use
    # Hopper's or Blackwell's asynchronous tensor-core instructions (cost/compute.py
    # attention_kernel_speed)
    attention_kernel: Literal["fused", "flash2"] = "fused"
    # FP8 attention (Megatron-Core fp8_dot_product_attention: Transformer Engine's FP8 fused
    # attention): under a low-precision recipe the attention's two matmuls run on the FP8 tensor
    # cores; queries, keys, values and the output gradient are cast to FP8 first (cost/compute.py)
    fp8_attention: bool = False
    # CUDA graphs (Megatron-Core cuda_graph_impl): captured kernels replay as one launch, so the host
    # no longer bounds the layer (cost/stage.py). none | local (Megatron's graphs) | transformer_engine
    # (TE make_graphed_callables) | full_iteration (the whole forward-backward captured)
    cuda_graph_impl: Literal["none", "local", "transformer_engine", "full_iteration"] = "none"
    # what local / transformer_engine capture (Megatron-Core cuda_graph_scope): attn (norm, attention,
    # bias-dropout-add), mlp (dense MLP block), moe (whole MoE block), moe_router (pre-MLP norm and
    # router), moe_preprocess (dispatcher metadata); empty: every scope of each layer
    cuda_graph_scope: list[Literal["attn", "mlp", "moe", "moe_router", "moe_preprocess"]] = []
    sparsity_2to4: bool = False                         # 2:4-sparse MLP weights (sparse tensor cores)
    # Fused cross-entropy (Megatron-Core cross_entropy_loss_fusion with Transformer Engine's kernel,
    # cross_entropy_fusion_impl "te"): the loss runs as online-softmax passes over the bf16 logits
    # (one read in the forward; one read and an in-place gradient write in the backward) instead of
    # materialising fp32 logits, max, exponentials and the gradient (model/ops.head_ops).
    cross_entropy_loss_fusion: bool = False
    # element-wise kernels: fused (Transformer Engine / Megatron-Core fusions, or torch.compile; the
    # stacks the efficiencies were fitted on) or eager (eager PyTorch modules as torchtitan or Hugging
    # Face write them without torch.compile: RMSNorm through fp32 in 7 kernels, SwiGLU in 2, RoPE
    # through complex fp32; model/ops.py eager_ops, rope_ops)
    kernel_fusion: Literal["fused", "eager"] = "fused"
    # CUDA_LAUNCH_BLOCKING=1 in the launch environment: every kernel launch returns only when the
    # kernel has finished (CUDA Toolkit docs, "CUDA Environment Variables"), so the host no longer
    # queues kernels ahead of the GPU and each launch's host time adds to the kernel's instead of
    # hiding behind it (cost/stage.py). BigScience's BLOOM-176B launch script sets it
    # (bigscience-workshop/bigscience train/tr11-176B-ml/tr11-176B-ml.slurm @ e726b15: "do not remove or the
    # training will hang").
    cuda_launch_blocking: bool = False
    # evaluation on the validation sets every eval_interval steps (Megatron --eval-interval), each
    # taking eval_time of wall time during which the job does not train (engine: the "evaluation"
    # time); null: no evaluation
    eval_interval: PosInt | None = None
    eval_time: Duration = "0 s"


class ParallelismConfig(Strict):
    tensor_model_parallel_size: PosInt = 1
    pipeline_model_parallel_size: PosInt = 1
    virtual_pipeline_model_parallel_size: PosInt | None = None
    context_parallel_size: PosInt = 1
    # how context parallelism exchanges keys and values (Megatron-Core cp_comm_type): p2p (ring
    # attention, KV blocks passed rank to rank behind each step's attention), all_gather (gather the
    # whole sequence's K/V first), a2a (Ulysses all-to-all between sequence and head sharding)
    cp_comm_type: Literal["p2p", "all_gather", "a2a"] = "p2p"
    expert_model_parallel_size: PosInt = 1
    data_parallel_size: IntOrAuto = "auto"
    sequence_parallel: bool = False
    micro_batch_size: PosInt = 1
    distributed_optimizer: bool = False                 # Megatron's ZeRO-1
    zero_stage: NonNegInt | None = Field(default=None, le=3)   # DeepSpeed ZeRO 0-3 / FSDP (3)
    # ZeRO-3/FSDP: free the gathered parameters after the forward (true, FSDP's default: gather again
    # for the backward) or keep them until the backward (false; torchtitan with pipelining, Llama 3)
    reshard_after_forward: bool = True
    # ZeRO-3/FSDP gather unit: one flat parameter per transformer layer (FSDP1/FSDP2 wrapped per block,
    # torchtitan, Megatron FSDP), or one collective per parameter tensor, each paying its latency in
    # line (DeepSpeed ZeRO-3 as Narayanan et al. 2021 measured it)
    fsdp_unit: Literal["layer", "tensor"] = "layer"
    # SMs the ZeRO-2/3 (FSDP) data-parallel collectives take from the compute they run behind: NCCL
    # runs one thread block per channel on the SMs (the Llama 3 paper, section 3.3.3: stock NCCL's
    # FSDP all-gathers and reduce-scatters use "extra GPU cycles for communication"). 0: that
    # overlap is free (the fitted efficiencies absorb it where the collectives hide behind little
    # of the step, as Megatron's once-per-step reduction does)
    dp_comm_sms: NonNegInt = Field(default=0, le=1024)
    # HSDP: shard model states over groups of this many data-parallel ranks and replicate across the
    # groups (torchtitan data_parallel_shard_degree); default: shard over all of DP
    data_parallel_shard_degree: PosInt | None = None
    # Expert tensor parallelism (Megatron MoE parallel folding): TP of the expert layers, separate
    # from the attention's TP; EP x ETP must divide TP x CP x DP. Default: the attention TP
    expert_tensor_parallel_size: PosInt | None = None
    # Activation CPU offloading (Megatron cpu_offloading / cpu_offloading_num_layers): the saved
    # activations of that many layers go to host memory in the forward and come back for the backward
    cpu_offloading: bool = False
    cpu_offloading_num_layers: NonNegInt = 0
    # none | selective (Megatron: the attention core) | selective_op (keep matmul and attention
    # outputs, recompute norms and activations: Megatron's recompute_modules [layernorm, moe_act];
    # torchtitan's op-level policy with recompute_matmuls below) | full (layer inputs only)
    recompute_granularity: Literal["none", "selective", "selective_op", "full"] = "none"
    # with selective_op: which plain (bf16 / fp16) matmuls of a block rerun too. none (Megatron's
    # recompute_modules: norms and activations only) or every_second (torchtitan's op-level policy
    # saves "all compute ops, except every second mm": the block's aten.mm calls in order q, k, v,
    # output projection, MLP up (gate, up), down; the even ones rerun; FP8 linears call _scaled_mm,
    # which that policy does not count: pytorch/torchtitan parallelize_llama.py _get_custom_policy
    # @ 9dec370 / e7c0cae / 820504e2). Dense, non-latent attention only (cost/stage.py)
    recompute_matmuls: Literal["none", "every_second"] = "none"
    # with selective: the modules whose forward reruns in the backward, by Megatron-Core's names
    # (TransformerConfig.recompute_modules): core_attn (the default), layernorm, moe_act,
    # mla_up_proj, mlp, moe, shared_experts (model/recompute.py: the ops each reruns and the tensors it drops)
    recompute_modules: list[Literal["core_attn", "layernorm", "moe_act", "mla_up_proj", "mlp", "moe",
                                    "shared_experts"]] | None = None
    # Megatron's full-recompute options: uniform = checkpoint the input of every group of
    # recompute_num_layers layers; block = recompute only the first recompute_num_layers layers of
    # each pipeline stage (model chunk), store the rest. Default with full: uniform, 1 layer.
    recompute_method: Literal["uniform", "block"] | None = None
    recompute_num_layers: PosInt | None = None
    pipeline_schedule: Literal["1f1b", "gpipe", "interleaved_1f1b", "zb_h1"] | None = None
    decoder_first_pipeline_num_layers: PosInt | None = None    # uneven first stage
    decoder_last_pipeline_num_layers: PosInt | None = None     # uneven last stage
    # order of the parallel dimensions over the ranks, innermost first: Megatron-LM's tp-cp-dp-pp
    # (pipeline stages outermost), or tp-cp-pp-dp (data parallelism outermost: Llama 3, section
    # 3.3.2, "[TP, CP, PP, DP]"); topology/placement.py. tp-cp-pp-dp needs expert parallelism 1
    rank_order: Literal["tp-cp-dp-pp", "tp-cp-pp-dp"] = "tp-cp-dp-pp"
    # Megatron-Core pipeline_model_parallel_layout: the layers of every virtual stage, e.g.
    # "Et*4|(t*4|)*14tmL" (E embedding, t decoder layer, m MTP module, L loss; | between stages);
    # sets the virtual stages (PP x VPP stages); config/pipeline_layout.py
    pipeline_model_parallel_layout: str | list[list[str]] | None = None
    overlap_grad_reduce: bool = True                    # DP gradient reduce overlapped with backward
    # where each microbatch's weight gradients are added into the main gradients (grad_dtype):
    # fused (Megatron-LM's default --gradient-accumulation-fusion: the weight-gradient GEMM accumulates
    # into the fp32 main_grad, no extra pass); unfused (--no-gradient-accumulation-fusion: autograd
    # writes the bf16 gradient, a hook adds it in place into main_grad: read 2 + read/write 2 x main
    # bytes per parameter); unfused_cast (DeepSpeed's BF16_Optimizer.update_hp_grads after every
    # micro-step: the bf16 gradient is cast into a temporary, then added: 2 + 4 x main bytes). The
    # unfused passes are memory-bound, once per microbatch over the GPU's parameters (cost/stage.py)
    grad_accumulation: Literal["fused", "unfused", "unfused_cast"] = "fused"
    # the data-parallel gradient collective under ZeRO-1 / the distributed optimizer: reduce_scatter
    # (each rank receives the reduced shard it updates: Megatron's distributed optimizer, DeepSpeed
    # ZeRO) or all_reduce (the whole reduced gradient on every rank, each then updates its shard:
    # DeepSpeed's BF16_Optimizer, which keeps an unsharded fp32 gradient buffer)
    grad_reduce_op: Literal["reduce_scatter", "all_reduce"] = "reduce_scatter"
    overlap_param_gather: bool = True                   # distributed-optimizer all-gather overlapped
    tp_comm_overlap: bool = False                       # TP collectives overlapped with GEMMs
    # MoE dispatch/combine all-to-alls overlapped with another microbatch's compute (Megatron-Core
    # --overlap-moe-expert-parallel-comm, Megatron-Bridge moe_a2a_overlap): needs EP > 1
    overlap_moe_expert_parallel_comm: bool = False


class CheckpointConfig(Strict):
    interval: DurationOrAuto = "auto"
    strategy: Literal["sync", "async"] = "async"
    storage_bandwidth: Bandwidth = "2 TB/s"             # Llama 3 paper: 2 TB/s sustained
    # what one node can write or read at once (its storage NICs); all writers share storage_bandwidth.
    # DGX H100: two ConnectX-7 400 Gb/s ports for storage -> 100 GB/s; null: no per-node limit
    node_storage_bandwidth: Bandwidth | None = "100 GB/s"
    # null: bf16 weights (2) + the optimizer's state (model/memory.py: Adam 12, Lion/SGD 8, Adafactor 4)
    bytes_per_parameter: PosFloat | None = None
    # restart reads the checkpoint back at this aggregate rate (resharding, metadata, host-to-device
    # included): ByteCheckpoint (Wan et al. 2024) loads a 405B checkpoint (~5.7 TB) in 129 s -> 44 GB/s
    load_bandwidth: Bandwidth = "44 GB/s"
    # async: the blocking part copies each GPU's share of the checkpoint to host memory at this rate;
    # ByteCheckpoint: 0.59 s blocking for a 405B model on 8,960 GPUs (~0.63 GB per GPU) -> ~1 GB/s
    async_blocking_bandwidth: Bandwidth = "1 GB/s"


class MemoryConfig(Strict):
    """What the framework and allocator hold beyond the model's tensors (docs/model.md)."""

    # CUDA context, NCCL communicators and buffers, cuBLAS/cuDNN workspaces (PyTorch + NCCL jobs hold
    # 2-4 GiB outside tensors; an assumption, docs/model.md)
    runtime_reserve: Size = "3 GiB"
    # caching-allocator slack, as a fraction of the activation memory that is allocated and freed
    # every microbatch. 0 assumes expandable segments (PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True,
    # set by the NeMo / Megatron-Bridge performance recipes); raise it for the default allocator
    fragmentation: Annotated[float, BeforeValidator(units.parser("ratio")), Field(ge=0, le=1)] = 0.0
    # free each pipeline stage's output tensor once it is sent on, keeping only its autograd node
    # (Megatron-Core deallocate_pipeline_outputs; Megatron-LM's training always sets it:
    # megatron/training/arguments.py core_transformer_config_from_args). false: every in-flight
    # forward of a model chunk also holds its output until the backward (docs/model.md)
    deallocate_pipeline_outputs: bool = True


# A phase's parallelism: any ParallelismConfig key; one left out is the top level's value
PhaseParallelismConfig = create_model(
    "PhaseParallelismConfig", __base__=Strict,
    **{name: (info.rebuild_annotation() if info.default is None else info.rebuild_annotation() | None, None)
       for name, info in ParallelismConfig.model_fields.items()})


class PhaseConfig(Strict):
    """One phase of the run (docs/campaign.md, "Training phases"): a key left out (null) is the top
    level's value. Exactly one phase may leave out its length: it trains what is left of
    training.train_tokens (or train_iters) after the others."""

    name: Label | None = None                             # default: "phase N"
    train_tokens: Tokens | None = None
    train_iters: PosInt | None = None                   # steps
    seq_length: PosInt | None = None                    # model.seq_length
    global_batch_size: PosInt | None = None             # training.global_batch_size (sequences)
    num_gpus: PosInt | None = None
    parallelism: PhaseParallelismConfig = PhaseParallelismConfig()


class WorkloadConfig(Strict):
    name: Label
    description: str | None = None
    cluster: str | None = None                          # path relative to the workload file
    num_gpus: PosInt | None = None
    model: ModelConfig
    training: TrainingConfig
    parallelism: ParallelismConfig = ParallelismConfig()
    checkpoint: CheckpointConfig = CheckpointConfig()
    memory: MemoryConfig = MemoryConfig()
    # training phases simulated in order in one campaign (batch ramp-up, longer context, annealing);
    # each phase's step is simulated under its own layout. Absent: one phase, the top level
    phases: Annotated[list[PhaseConfig], Field(min_length=1, max_length=64)] | None = None
