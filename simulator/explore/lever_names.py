"""The cost levers' names and published constants, apart from explore/levers.py so that the
command line can list them without importing the model."""

# Minitron (Muralidharan et al. 2024, "Compact Language Models via Pruning and Knowledge
# Distillation"): pruned models retrained with "a fraction (<3%) of the original training data",
# "up to 40x fewer training tokens per model compared to training from scratch" -> 1/40.
RETRAIN_FRACTION = 1 / 40
# Llama-3.1-Minitron 4B-Width (Sreenivas et al. 2024, "LLM Pruning and Distillation in Practice:
# The Minitron Approach"): Llama 3.1 8B pruned to hidden 3072 of 4096 (0.75), MLP 9216 of 14336.
PRUNE_WIDTH = 0.75
STEP_LEVERS = ("optimizer", "fp8", "sparsity")
ALL_LEVERS = STEP_LEVERS + ("compute_optimal", "pruned")
