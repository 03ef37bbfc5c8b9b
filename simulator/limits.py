"""Every bound trainsim puts on its inputs, in one place (docs/usage.md, "Limits", explains each).

The bounds keep every command's time and memory finite for any input: a hostile or absurd file,
flag or value costs an error message (exit 2), never a hang, an exhausted machine or a lost result.
Each is far above what a real training run or cluster needs, and says why.
"""
from __future__ import annotations

# Input files (workload, cluster, topology, --vary cluster=, carbon-intensity profile)
MAX_YAML_BYTES = 1 << 20        # 1 MiB: the bundled files are < 4 KiB; PyYAML reads ~1 MB/s
MAX_CSV_BYTES = 16 << 20        # 16 MiB: an hourly profile for 100 years is ~10 MB
MAX_YAML_NODES = 100_000        # values after expanding aliases (a "billion laughs" stops here)
MAX_YAML_DEPTH = 64             # nesting of sections; the deepest real key path has 4 parts
MAX_SET_CHARS = 10_000          # one --set KEY=VALUE text

# Integers in the YAML (sizes, counts, steps): above 10^9 no dimension, count or step number of a
# training run exists (10^9 GPUs, layers or steps), and products of a few such values stay exact
# in a float (< 2^53).
MAX_INT = 10**9
# decoder layers of one model (model.num_layers, mtp_num_layers): the deepest published LLMs have a
# few hundred; the layer patterns (MoE, windows, chunks) and the pipeline split are kept per layer
MAX_LAYERS = 100_000
# parameters of a model `plan` proposes or resizes to: the largest published models have a few 10^12;
# 10^15 is far above any that could be trained, and keeps the family search (model/resize.py,
# one candidate per head count) to milliseconds
MAX_MODEL_PARAMS = 1e15
MAX_TRAIN_TOKENS = 1e20      # ~10^7 times the tokens of today's largest runs (15-36T): a training length or a proposal
# the smallest proposal `plan` prices: the Chinchilla fit's runs start at 70M parameters and 5B
# tokens (Hoffmann et al. 2022); below a million of either the extrapolation is 70x past the fit and
# the family cannot build the model (one layer of the workload's width is already ~10^7)
MIN_MODEL_PARAMS = 1e6
MIN_TRAIN_TOKENS = 1e6
# ports on one switch: the largest shipping Ethernet/InfiniBand switches have 512 (radix-512 ASICs
# behind a 51.2 Tb/s chip); 65,536 leaves a wide margin and keeps the fabric generators' loops short
MAX_SWITCH_RADIX = 65_536

# Messages: every value echoed in an error is cut to this many characters (reprlib-style)
MAX_ECHO_CHARS = 200

# Executors
MAX_WORKERS_PER_CPU = 4         # --workers above 4 x CPUs only adds fork and memory overhead
DASK_CONNECT_S = 10.0           # --scheduler: seconds to connect and hear the scheduler's handshake
MAX_TOP = 200                   # search --top: layouts re-simulated with the full engines (~0.03 s each
                                # --fast, ~0.3 s with the DES and 32 replicas): minutes at most
# The step DES runs one forward and one backward pass per microbatch, model chunk and stage (~60,000
# a second here); above this many the closed form (cost/step.py, within 2 % of the DES on the
# validation rows) prices the step instead, so a huge microbatch count cannot take minutes
MAX_DES_PASSES = 200_000
MAX_REPLICAS = 100_000          # --replicas: Monte Carlo error ~ 1/sqrt(n) is 0.3 % here
WARN_REPLICAS = 10_000          # --replicas above this: a note of the expected cost first
