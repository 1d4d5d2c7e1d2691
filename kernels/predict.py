"""Predictions of infinitely wide networks trained on mean squared error.

Conventions: the loss is ``L = 1/(2P) sum_mu |f(x_mu) - y_mu|^2`` and gradient
descent with learning rate ``lr`` moves the function by
``f <- f - (lr/P) Theta (f - y)`` (Lee et al. 2019, eq. 7, in discrete time), with
``Theta`` the learning-rate-weighted NTK returned by ``kernel_fn(..., "ntk")``.
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from kernels import validation


class Trajectory(NamedTuple):
  """Predictions at every step 0..steps: shapes (steps + 1, P, k) and (steps + 1, Q, k)."""
  train: jax.Array
  test: Optional[jax.Array]
  loss: jax.Array  # (steps + 1,) training loss 1/(2P) sum |f - y|^2


def gradient_descent_mse(ntk_train_train, y_train, learning_rate: float, steps: int,
                         ntk_test_train=None, fx_train_0=None, fx_test_0=None) -> Trajectory:
  """Discrete-time gradient descent of a linearised network (Lee et al. 2019, eq. 7-9)."""
  k = validation.as_float_array(ntk_train_train, "ntk_train_train")
  y = validation.as_float_array(y_train, "y_train")
  if y.ndim == 1:
    y = y[:, None]
  p = y.shape[0]
  if k.shape != (p, p):
    raise ValueError(f"ntk_train_train must have shape ({p}, {p}), got {k.shape}.")
  steps = validation.check_positive_int(steps, "steps") if steps else 0
  f0 = jnp.zeros_like(y) if fx_train_0 is None else jnp.asarray(fx_train_0).reshape(y.shape)
  kt = None if ntk_test_train is None else validation.as_float_array(ntk_test_train,
                                                                     "ntk_test_train")
  if kt is not None and kt.shape[1] != p:
    raise ValueError(f"ntk_test_train must have {p} columns, got {kt.shape}.")
  g0 = None if kt is None else (jnp.zeros((kt.shape[0], y.shape[1]), y.dtype)
                                if fx_test_0 is None else jnp.asarray(fx_test_0))
  return _gd(k, y, learning_rate, steps, kt, f0, g0)


@functools.partial(jax.jit, static_argnums=(3,))
def _gd(k, y, lr, steps, kt, f0, g0):
  def step(carry, _):
    f, g = carry
    r = f - y
    f_new = f - (lr / y.shape[0]) * (k @ r)
    g_new = None if g is None else g - (lr / y.shape[0]) * (kt @ r)
    return (f_new, g_new), (f_new, g_new)

  _, (fs, gs) = jax.lax.scan(step, (f0, g0), None, length=steps)
  fs = jnp.concatenate([f0[None], fs])
  gs = None if g0 is None else jnp.concatenate([g0[None], gs])
  loss = 0.5 * jnp.mean(jnp.sum((fs - y) ** 2, axis=-1), axis=-1)
  return Trajectory(fs, gs, loss)


def gp_posterior(k_train_train, y_train, k_test_train, k_test_test=None, diag_reg: float = 0.0):
  """Posterior mean (and covariance) of a GP / kernel ridge regression (Rasmussen & Williams 2006, eq. 2.23-2.24)."""
  k = validation.as_float_array(k_train_train, "k_train_train")
  y = validation.as_float_array(y_train, "y_train")
  kt = validation.as_float_array(k_test_train, "k_test_train")
  reg = validation.check_nonnegative(diag_reg, "diag_reg")
  n = k.shape[0]
  chol = jax.scipy.linalg.cho_factor(k + reg * jnp.trace(k) / n * jnp.eye(n, dtype=k.dtype))
  mean = kt @ jax.scipy.linalg.cho_solve(chol, y)
  if k_test_test is None:
    return mean
  cov = jnp.asarray(k_test_test) - kt @ jax.scipy.linalg.cho_solve(chol, kt.T)
  return mean, cov
