"""Monte Carlo estimates of infinite-width kernels from finite networks (Novak et al. 2019, Sec. 3).

Averages the empirical NNGP and NTK over ``n_samples`` independently initialised
networks, vmapped in batches of ``batch_size``. For `kernels.stax` networks the
NTK is learning-rate weighted by default (as ``kernel_fn``'s), so the estimate
converges to ``kernel_fn`` for every parameterization.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from kernels import empirical, optim, validation
from kernels.stax.layer import ApplyFn, _namedtuple, canonicalize_get


def monte_carlo_kernel_fn(init_fn: Callable, apply_fn: Callable, key: jax.Array,
                          n_samples: int, batch_size: int = 1, trace_axes=(-1,),
                          diagonal_axes=(), implementation: str = "jacobian",
                          lr_weighted: bool = True) -> Callable:
  """Returns ``kernel_fn(x1, x2=None, get=None)`` averaging over random initialisations."""
  n_samples = validation.check_positive_int(n_samples, "n_samples")
  batch_size = validation.check_positive_int(batch_size, "batch_size")
  if n_samples % batch_size:
    raise ValueError(f"n_samples ({n_samples}) must be a multiple of batch_size ({batch_size}).")
  if not (callable(init_fn) and callable(apply_fn)):
    raise TypeError("init_fn and apply_fn must be callable.")
  net = apply_fn.layer if isinstance(apply_fn, ApplyFn) else None

  def one(k, x1, x2, get):
    _, params = init_fn(k, x1.shape)
    lrs = optim.learning_rates(net, params) if (net is not None and lr_weighted) else None
    out = []
    for g in get:
      if g == "nngp":
        out.append(empirical.empirical_nngp_fn(apply_fn, trace_axes, diagonal_axes)(
            x1, x2, params))
      else:
        out.append(empirical.empirical_ntk_fn(apply_fn, trace_axes, diagonal_axes,
                                              implementation=implementation,
                                              learning_rates=lrs)(x1, x2, params))
    return tuple(out)

  def kernel_fn(x1, x2=None, get=None):
    get_t, single = canonicalize_get(get)
    get_full = get_t or ("nngp", "ntk")
    x1, x2 = validation.check_inputs(x1, x2) if jnp.ndim(x1) == 2 else (x1, x2)
    keys = jax.random.split(key, n_samples).reshape((n_samples // batch_size, batch_size, -1))

    @jax.jit
    def batch_mean(ks):
      return jax.tree_util.tree_map(lambda a: jnp.mean(a, 0),
                                    jax.vmap(lambda k: one(k, x1, x2, get_full))(ks))

    total = None
    for ks in keys:
      m = batch_mean(ks)
      total = m if total is None else jax.tree_util.tree_map(jnp.add, total, m)
    out = tuple(t / keys.shape[0] for t in total)
    if get_t is None:
      return _namedtuple(get_full)(*out)
    return out[0] if single else _namedtuple(get_t)(*out)

  return kernel_fn
