"""kernels: one network description, its exact infinite-width kernels and its finite views.

Modules: `stax` (layers), `parameterization` (abc scaling as data), `empirical`
(finite-width NTK/NNGP of any function), `monte_carlo`, `predict` (trained
infinite-width networks), `optim` (optax with per-layer learning rates),
`flax_module` (the same network in Flax), `batching` (`kernels.batch`: tiled kernels over
devices and hosts, to memory or a memmap; `sharding` is its former name).
"""
from kernels import batching
from kernels import empirical
from kernels import flax_module
from kernels import monte_carlo
from kernels import optim
from kernels import parameterization
from kernels import predict
from kernels import sharding
from kernels import stax
from kernels.batching import batch
from kernels.kernel import Kernel

__all__ = ["Kernel", "batch", "batching", "empirical", "flax_module", "monte_carlo", "optim", "parameterization",
           "predict", "sharding", "stax"]
