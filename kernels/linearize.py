"""Linearisation and Taylor expansion of a network in its parameters (neural-tangents' semantics).

``linearize(f, params)`` returns ``f_lin(p, *args) = f(params, *args) + J(params) (p - params)``
and ``taylor_expand(f, params, degree)`` the Taylor polynomial of that degree around
``params``, both computed with forward-mode products (`jax.jvp`), never with a
materialised Jacobian. ``f`` is any JAX function ``f(params, *args, **kwargs)`` or
a Flax linen module (its ``apply``, with ``params`` the variables dict).
"""
from __future__ import annotations

import numbers
from typing import Any, Callable

import jax
import jax.numpy as jnp

__all__ = ["linearize", "taylor_expand"]


def _as_function(f) -> Callable:
  try:
    import flax.linen as nn  # pylint: disable=g-import-not-at-top
    if isinstance(f, nn.Module):
      return f.apply
  except ImportError:  # pragma: no cover
    pass
  if not callable(f):
    raise TypeError(f"f must be a function f(params, *args) or a Flax module, got "
                    f"{type(f).__name__}.")
  return f


def _check_structure(p, params):
  if jax.tree_util.tree_structure(p) != jax.tree_util.tree_structure(params):
    raise ValueError("params passed to the linearised function must have the structure of "
                     "the params it was expanded around.")


def _sub(a, b):
  return jax.tree_util.tree_map(lambda x, y: x - y, a, b)


def linearize(f, params: Any) -> Callable:
  """First-order Taylor expansion of ``f`` around ``params`` (Lee et al. 2019, eq. 4)."""
  fn = _as_function(f)

  def f_lin(p, *args, **kwargs):
    _check_structure(p, params)
    out, tangent = jax.jvp(lambda q: fn(q, *args, **kwargs), (params,), (_sub(p, params),))
    return jax.tree_util.tree_map(jnp.add, out, tangent)

  return f_lin


def taylor_expand(f, params: Any, degree: int) -> Callable:
  """Taylor polynomial of ``f`` of ``degree`` around ``params``: sum_k D^k f [dp]^k / k! (Dyer & Gur-Ari 2020, eq. 2)."""
  fn = _as_function(f)
  if isinstance(degree, bool) or not isinstance(degree, numbers.Integral) or degree < 0:
    raise ValueError(f"degree must be a non-negative integer, got {degree!r}.")

  def expand(g, dparams, current):
    """f + (D f[dp] + (D^2 f[dp, dp] + ...) / 3) / 2 ...: Horner's form of the series."""
    if current == degree:
      return g(params)

    def g_jvp(p):
      return jax.jvp(g, (p,), (dparams,))[1]

    rest = expand(g_jvp, dparams, current + 1)
    return jax.tree_util.tree_map(lambda a, b: a + b / (current + 1), g(params), rest)

  def f_taylor(p, *args, **kwargs):
    _check_structure(p, params)
    return expand(lambda q: fn(q, *args, **kwargs), _sub(p, params), 0)

  return f_taylor
