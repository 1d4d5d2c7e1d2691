"""The solver core every DMFT shares: inputs, time index, error signal, fixed point, outcome.

An architecture adds only its field equations (`dmft.two_layer`, `dmft.deep`); the
rest of a solve is here, written once:

* `prepare`: checked training and test data on one array (train rows first);
* `time_index`: the times at which two-time kernels are reported;
* `error_signal`: the error Delta(t) = y - f(t) implied by the field increments, the
  direct effect of the error taken through the instantaneous NTK (implicit in time,
  hence stable; Bordelon & Pehlevan 2022, eq. 7 in discrete time);
* `damped_fixed_point`: damped iteration of the order parameters to a tolerance on
  their relative change (Bordelon & Pehlevan 2022, Algorithm 1);
* `conclude`: convergence, divergence and the error that says what to change.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from dmft import errors
from dmft import lazy
from kernels import validation as val


@dataclasses.dataclass(frozen=True)
class Problem:
  """Training data, optional test data, and all points stacked (train rows first)."""
  x: jax.Array
  y: jax.Array
  x_test: Optional[jax.Array]
  y_test: Optional[jax.Array]
  x_all: jax.Array

  @property
  def n_train(self) -> int:
    return int(self.x.shape[0])

  @property
  def dtype(self):
    return self.x_all.dtype


def prepare(X, y, X_test=None, y_test=None) -> Problem:
  """Checks the data (ValueError naming the argument) and stacks train and test inputs."""
  x = val.as_inputs(X, "X")
  yy = val.as_targets(y, x.shape[0], "y")
  if X_test is None:
    if y_test is not None:
      raise ValueError("y_test given without X_test")
    return Problem(x, yy, None, None, x)
  xt = val.as_inputs(X_test, "X_test")
  if xt.shape[1] != x.shape[1]:
    raise ValueError(f"X_test must have {x.shape[1]} features like X, got shape {xt.shape}")
  yt = None if y_test is None else val.as_targets(y_test, xt.shape[0], "y_test")
  return Problem(x, yy, xt, yt, jnp.concatenate([x, xt]))


def gaussian_draws(seed, shapes, dtype) -> list:
  """Standard Gaussian arrays of the given shapes, drawn in order from one generator.

  ``seed`` is an int or a JAX PRNG key (its bits seed the generator). The draws are
  NumPy's: a compiled JAX sampler would add its compilation to every cold solve.
  """
  seed = val.check_seed(seed)
  if isinstance(seed, jax.Array):
    data = jax.random.key_data(seed) if jnp.issubdtype(seed.dtype, jax.dtypes.prng_key) else seed
    seed = [int(v) for v in np.asarray(data).ravel()]
  rng = np.random.default_rng(seed)
  return [rng.standard_normal(shape).astype(np.dtype(dtype)) for shape in shapes]


def time_index(steps: int, kernel_times: Optional[int]) -> tuple:
  """``kernel_times`` (default min(steps + 1, 11)) evenly spaced steps in [0, steps]."""
  if kernel_times is None:
    kernel_times = min(steps + 1, 11)
  k = val.check_int(kernel_times, "kernel_times", minimum=1)
  idx = np.unique(np.round(np.linspace(0, steps, min(k, steps + 1))).astype(np.int64))
  return tuple(int(i) for i in idx)


def error_signal(inc, ntk, delta, y, lr):
  """The error Delta(t) = y - f(t) implied by increments driven by ``delta``.

  Args:
    inc: (T, P) increments f(t+1) - f(t) of the train predictions under ``delta``.
    ntk: (T, P, P) instantaneous NTK on the training points.
    delta: (T, P) the error signal that drove the fields.
    y: (P,) targets.
    lr: base learning rate.

  Returns:
    (T, P): f(0) = 0, f(t+1) = f(t) + inc(t) + lr / P NTK(t) (Delta(t) - delta(t)).
  """
  p = y.shape[0]

  def recur(f_t, xs):
    inc_t, ntk_t, delta_old_t = xs
    delta_t = y - f_t
    return f_t + inc_t + lr / p * ntk_t @ (delta_t - delta_old_t), delta_t

  _, out = jax.lax.scan(recur, jnp.zeros((p,), y.dtype), (inc, ntk, delta))
  return out


def rel_change(new, old):
  """||new - old|| / ||new|| (0 when both vanish)."""
  return jnp.linalg.norm(new - old) / jnp.maximum(jnp.linalg.norm(new),
                                                  jnp.finfo(new.dtype).tiny)


def damped_fixed_point(update: Callable, params0, extra0, *, damping, tol,
                       max_iterations, floor=None, patience: int = 10,
                       improvement: float = 0.9):
  """Iterates params <- (1 - damping) params + damping new until the residual is at most tol.

  ``update(params, extra) -> (new_params, new_extra, residual)``; ``params`` (a pytree
  of order parameters) are damped, ``extra`` is carried as returned. Stops at
  ``max_iterations`` or a non-finite residual.

  ``floor`` (sampled solves): the residual below which the map over a finite set of
  quenched samples need not contract any further (its own Monte Carlo error). Once
  the residual is at most ``floor`` and has not fallen below ``improvement`` times its
  best value for ``patience`` iterations, the iteration has *stalled* and stops.
  Returns ``(params, extra, iterations, residual, stalled)``.
  """
  dtype = jax.tree_util.tree_leaves(params0)[0].dtype
  big = jnp.asarray(jnp.finfo(dtype).max, dtype)
  floor = -big if floor is None else jnp.asarray(floor, dtype)

  def body(state):
    it, params, extra, _, best, since = state
    new, extra, res = update(params, extra)
    params = jax.tree_util.tree_map(lambda n, o: (1 - damping) * o + damping * n, new, params)
    better = res < improvement * best
    return (it + 1, params, extra, res, jnp.where(better, res, best),
            jnp.where(better, 0, since + 1))

  def stalled(state):
    _, _, _, res, _, since = state
    return (res <= floor) & (since >= patience)

  def cond(state):
    it, _, _, res, _, _ = state
    return (it < max_iterations) & (res > tol) & jnp.isfinite(res) & ~stalled(state)

  state = (0, params0, extra0, big, big, 0)
  state = jax.lax.while_loop(cond, body, state)
  it, params, extra, res = state[:4]
  return params, extra, it, res, stalled(state) & (res > tol)


def losses(f, y):
  """(T+1,) half mean squared error of predictions f (T+1, P) against y."""
  return 0.5 * np.mean((np.asarray(f) - np.asarray(y)[None]) ** 2, axis=1)


def conclude(*, what: str, residual: float, tol: float, n_iterations: int,
             max_iterations: int, raise_on_nonconvergence: bool, loss, lr: float,
             gamma0: float, hint: str, check_divergence: bool = True,
             stalled: bool = False) -> bool:
  """Whether the solve converged; raises `NonConvergenceError` or `DivergenceError`.

  A sampled solve that ``stalled`` at its Monte Carlo floor (`damped_fixed_point`) has
  converged as far as its samples allow.

  A non-finite residual (the iteration itself blew up) raises whatever
  ``raise_on_nonconvergence`` says: its order parameters are not a result.
  """
  if not np.isfinite(residual):
    raise errors.NonConvergenceError(
        f"{what} DMFT: the fixed-point iteration diverged after {n_iterations} iterations "
        f"(non-finite order parameters) although lazy gradient descent at lr={lr} is "
        f"stable: the iterates overshoot the feature-learning dynamics at gamma0={gamma0}; "
        "lower lr, gamma0 or steps, or lower damping", residual, n_iterations)
  converged = bool(residual <= tol) or stalled
  if check_divergence and converged:
    lazy.check_finite(loss, lr, gamma0)
  if not converged and raise_on_nonconvergence:
    raise errors.NonConvergenceError(
        f"{what} DMFT did not converge: relative residual {residual:.3g} > tol {tol:.3g} "
        f"after {n_iterations} iterations (max_iterations={max_iterations}); {hint}",
        residual, n_iterations)
  return converged
