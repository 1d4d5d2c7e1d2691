"""Layers with the names and signatures of ``neural_tangents.stax``.

``from kernels import stax`` replaces ``from neural_tangents import stax``::

  init_fn, apply_fn, kernel_fn = stax.serial(
      stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu(),
      stax.Dense(1, W_std=1.5, b_std=0.05))
  k = kernel_fn(x1, x2, ("nngp", "ntk"))

Every layer also takes a parameterization (``"ntk"``, ``"standard"``, ``"mup"`` or a
`kernels.parameterization.Parameterization`), read by every view of the network.
"""
from kernels.stax.combinators import (FanInSum, FanOut, Identity, Residual, parallel,
                                      serial)
from kernels.stax.dense import Dense
from kernels.stax.elementwise import (ABRelu, Abs, Elementwise, ElementwiseNumerical, Erf,
                                      Gelu, LeakyRelu, Relu, Tanh)
from kernels.stax.layer import Layer
from kernels.stax.mlp import mlp

__all__ = [
    "ABRelu", "Abs", "Dense", "Elementwise", "ElementwiseNumerical", "Erf", "FanInSum",
    "FanOut", "Gelu", "Identity", "Layer", "LeakyRelu", "Relu", "Residual", "Tanh", "mlp",
    "parallel", "serial",
]
