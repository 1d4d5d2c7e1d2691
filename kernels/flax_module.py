"""The same network description as a Flax module.

We use ``flax.linen``: its modules are pure functions of an explicit parameter
pytree (``init``/``apply``), which is what vmapping ensembles over seeds,
computing empirical NTKs with `jax.jacrev`, and sharing parameters with the
stax ``apply_fn`` need; ``nnx``'s mutable objects would have to be split back
into the same pure form for each of those.

Parameters are named by the Dense layer's position in the description:
``W_0_2`` and ``b_0_2`` for the Dense at path (0, 2). `to_flax_params` and
`from_flax_params` convert to and from the stax parameter tuples, and the
module's outputs equal ``apply_fn``'s for the same parameters.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from kernels.stax.layer import Layer


def _name(kind: str, path) -> str:
  return kind + "_" + "_".join(str(i) for i in path) if path else kind


class StaxModule(nn.Module):
  """A Flax linen module running a `kernels.stax` description."""
  net: Layer

  @nn.compact
  def __call__(self, x):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      x = x.astype(jnp.result_type(float))

    def sampler(key, path, name, shape, std, dtype):
      del key
      return self.param(_name(name, path),
                        lambda rng, s: std * jax.random.normal(rng, s, dtype), shape)

    ctx = self.net.context()
    _, params = self.net._init(jax.random.PRNGKey(0), x.shape, (), ctx, sampler, x.dtype)
    if _stochastic(self.net):  # Dropout in train mode: a key from the "dropout" stream
      ctx = ctx.with_rng(self.make_rng("dropout"))
    return self.net._apply(params, x, (), ctx)


def _stochastic(layer: Layer) -> bool:
  return (getattr(layer, "mode", None) == "train" and hasattr(layer, "rate")) or any(
      _stochastic(c) for c in layer._children())


def to_flax(net: Layer) -> StaxModule:
  """Returns the Flax module of a stax network."""
  if not isinstance(net, Layer):
    raise TypeError(f"net must be a kernels.stax network, got {type(net).__name__}.")
  return StaxModule(net)


def _walk(params, path=()):
  """Yields (path, (W, b)) for every Dense parameter pair in a stax params tree."""
  if isinstance(params, tuple) and len(params) == 2 and hasattr(params[0], "ndim") and \
      params[0].ndim >= 2 and (params[1] is None or hasattr(params[1], "ndim")):
    yield path, params
    return
  if isinstance(params, (tuple, list)):
    for i, p in enumerate(params):
      yield from _walk(p, path + (i,))


def _has_attention(layer: Layer) -> bool:
  return hasattr(layer, "n_chan_key") or any(_has_attention(c) for c in layer._children())


def _has_repeat(layer: Layer) -> bool:
  return hasattr(layer, "_repeats") or any(_has_repeat(c) for c in layer._children())


def to_flax_params(net: Layer, params: Any) -> dict:
  """Stax params -> Flax variables ``{"params": {...}}`` (Dense and Conv weights)."""
  if _has_repeat(net):
    raise ValueError("to_flax_params: networks with repeat(...) store stacked parameters; "
                     "initialise the Flax module directly (its parameters are W_r<i>_<path>).")
  if _has_attention(net):
    raise ValueError("to_flax_params: GlobalSelfAttention parameters are not (W, b) pairs; "
                     "initialise the Flax module directly and read it with from_flax_params.")
  out = {}
  for path, (W, b) in _walk(params):
    out[_name("W", path)] = W
    if b is not None:
      out[_name("b", path)] = b
  return {"params": out}


def from_flax_params(net: Layer, variables: dict, input_shape) -> Any:
  """Flax variables -> stax params (the structure of ``net``'s ``init_fn``)."""
  flat = variables["params"] if "params" in variables else variables

  def sampler(key, path, name, shape, std, dtype):
    value = flat[_name(name, path)]
    if tuple(value.shape) != tuple(shape):
      raise ValueError(f"parameter {_name(name, path)} has shape {value.shape}, expected {shape}.")
    return value

  _, params = net._init(jax.random.PRNGKey(0), tuple(input_shape), (), net.context(), sampler,
                        jnp.float32)
  return params
