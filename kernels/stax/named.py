"""The project's one table of activations by name (``"relu"``, ``"tanh"``, ...).

Programs and configs name activations with strings; `kernels.width_check`, `dmft` and
their configs turn a name into its `kernels.stax` layer here, so every view of a named
network (its kernel, its DMFT, its finite networks) uses the same layer.
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp

from kernels.stax.elementwise import ABRelu, Abs, ElementwiseNumerical, Erf, Gelu, LeakyRelu
from kernels.stax.elementwise import Relu, Tanh
from kernels.stax.layer import Layer

# name -> (layer factory, whether the layer computes its Gaussian kernels by quadrature
# and takes ``deg``, the number of Gauss-Hermite points).
NAMED_ACTIVATIONS = {
    "relu": (Relu, False),
    "erf": (Erf, False),
    "gelu": (Gelu, False),
    "tanh": (Tanh, True),
    "abs": (Abs, False),
    "linear": (lambda: ABRelu(1.0, 1.0), False),
    "identity": (lambda: ABRelu(1.0, 1.0), False),
    "leaky_relu": (lambda: LeakyRelu(0.01), False),
    "sigmoid": (functools.partial(ElementwiseNumerical, jax.nn.sigmoid), True),
    "softplus": (functools.partial(ElementwiseNumerical, jax.nn.softplus), True),
    "sin": (functools.partial(ElementwiseNumerical, jnp.sin), True),
}


def activation_layer(name: str, deg: Optional[int] = None) -> Layer:
  """The stax layer of a named activation (`NAMED_ACTIVATIONS`).

  ``deg``: Gauss-Hermite points of an activation without a closed form (None: the layer's
  default); ignored for the others.
  """
  if name not in NAMED_ACTIVATIONS:
    raise ValueError(f"activation must be one of {sorted(NAMED_ACTIVATIONS)}, got {name!r}.")
  factory, quadrature = NAMED_ACTIVATIONS[name]
  return factory(deg=deg) if quadrature and deg is not None else factory()
