"""Kernel ridge regression by simulation, to check the learning-curve theory.

Averages of the test and train errors of k(x, X)(K + ridge I)^-1 y over
independent draws of training sets: one jitted program mapping over the
draws (`lax.map`, which bounds memory where a vmap would hold all Gram
matrices at once).
"""
from typing import Callable

import jax
import jax.numpy as jnp


def krr_errors(kernel_fn: Callable, x_train, y_train, x_test, y_test, ridge):
  """(test_mse, train_mse) of one kernel ridge regression fit.

  A tiny relative jitter (1e-10 of the mean diagonal in float64, 1e-6 in
  float32) keeps ridge = 0 solvable; it is far below any ridge a user sets.
  """
  k_tt = kernel_fn(x_train, x_train)
  n = k_tt.shape[0]
  eps = 1e-10 if k_tt.dtype == jnp.float64 else 1e-6
  jitter = eps * jnp.trace(k_tt) / n
  alpha = jnp.linalg.solve(k_tt + (ridge + jitter) * jnp.eye(n, dtype=k_tt.dtype),
                           y_train)
  test = jnp.mean((kernel_fn(x_test, x_train) @ alpha - y_test)**2)
  train = jnp.mean((k_tt @ alpha - y_train)**2)
  return test, train


def simulate_learning_curve(key, kernel_fn: Callable, sample_x: Callable,
                            target_fn: Callable, n: int, *, ridge=0.0,
                            noise=0.0, num_draws: int = 20,
                            num_test: int = 2000):
  """Mean (test_mse, train_mse) and their standard errors over `num_draws` draws.

  Args:
    key: PRNG key.
    kernel_fn: k(X1, X2) -> (n1, n2) Gram matrix (jittable).
    sample_x: (key, num) -> (num, dim) inputs.
    target_fn: (num, dim) -> (num,) clean target.
    n: training-set size.
    ridge: ridge of the predictor.
    noise: label-noise variance (train and test labels).
    num_draws: independent training sets.
    num_test: fresh test points per draw.
  """
  def one(k):
    k1, k2, k3, k4 = jax.random.split(k, 4)
    x = sample_x(k1, n)
    xt = sample_x(k2, num_test)
    y = target_fn(x) + jnp.sqrt(noise) * jax.random.normal(k3, (n,), x.dtype)
    yt = target_fn(xt) + jnp.sqrt(noise) * jax.random.normal(
        k4, (num_test,), x.dtype)
    return krr_errors(kernel_fn, x, y, xt, yt, ridge)

  test, train = jax.lax.map(one, jax.random.split(key, num_draws))
  se = lambda a: jnp.std(a) / jnp.sqrt(num_draws)
  return dict(test_mse=float(jnp.mean(test)), train_mse=float(jnp.mean(train)),
              test_se=float(se(test)), train_se=float(se(train)))
