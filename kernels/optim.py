"""optax optimizers whose per-layer learning rates come from the parameterization.

``lr_layer = lr * gamma0^p * width^-c`` for each weight and bias (Yang & Hu 2021, eq. 1;
muP Adam rules of Yang et al. 2022, Table 3), so that a network built with
`kernels.stax` and trained with these optimizers is trained "under the same
parameterization" as its kernels and DMFT.
"""
from __future__ import annotations

from typing import Any

import jax
import optax

from kernels.stax.layer import Layer


def learning_rates(net: Layer, params: Any, optimizer: str = "sgd"):
  """Pytree like ``params`` with each leaf's learning-rate factor (a Python float)."""
  if not isinstance(net, Layer):
    raise TypeError(f"net must be a kernels.stax network, got {type(net).__name__}.")
  return net._lr(params, (), net.context(), optimizer)


def scale_by_parameterization(net: Layer, optimizer: str = "sgd") -> optax.GradientTransformation:
  """Multiplies each update leaf by its learning-rate factor (computed from param shapes)."""

  def init_fn(params):
    learning_rates(net, params, optimizer)  # validates the structure early
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    factors = learning_rates(net, updates, optimizer)
    updates = jax.tree_util.tree_map(lambda f, u: None if u is None else f * u, factors,
                                     updates, is_leaf=lambda x: x is None)
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def sgd(net: Layer, learning_rate: float, momentum: float | None = None) -> optax.GradientTransformation:
  """SGD with the parameterization's per-layer learning rates."""
  return optax.chain(optax.sgd(learning_rate, momentum=momentum),
                     scale_by_parameterization(net, "sgd"))


def adam(net: Layer, learning_rate: float, b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> optax.GradientTransformation:
  """Adam with the parameterization's per-layer (muP Adam) learning rates."""
  return optax.chain(optax.adam(learning_rate, b1=b1, b2=b2, eps=eps),
                     scale_by_parameterization(net, "adam"))
