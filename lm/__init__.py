"""A Flax decoder-only transformer under SP, muP and depth-muP, read from `kernels.parameterization`.

Modules: `config` (the model's shape and parameterization), `model` (the Flax
module), `scales` (the per-parameter multiplier / init / learning-rate / epsilon
pytree), `optim` (SGD, Adam, AdamW with those rates), `data` (synthetic languages
with exact entropy rates, byte-level local text), `train` (jitted, data-parallel
training with checkpoints), and the programs `coord_check`, `transfer`, `ladder`.
"""
