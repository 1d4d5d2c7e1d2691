"""Spectral learning curves of kernel (ridge) regression: eigenlearning.

Given the kernel's eigenvalues lambda_i (for eigenfunctions orthonormal under
the data distribution) and the target's coefficients v_i in that basis, the
theory of Bordelon, Canatar and Pehlevan 2020 and Simon et al. 2021 predicts
the average errors of the predictor f(x) = k(x, X) (K + ridge I)^-1 y on n
samples with label-noise variance `noise`:

  kappa:         sum_i lambda_i / (lambda_i + kappa) + ridge / kappa = n
  learnability:  L_i = lambda_i / (lambda_i + kappa)
  overfitting:   E0 = n / (n - sum_i L_i^2)
  test_mse:      E0 (sum_i (1 - L_i)^2 v_i^2 + noise)   (noisy test labels)
  train_mse:     (ridge / (n kappa))^2 test_mse          (noisy train labels)

All functions are jittable and follow the input dtype (float32 by default,
float64 under `jax_enable_x64`); kappa is found by bisection in log space.
"""
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

_BISECTION_STEPS = 200


def _weighted(values, multiplicity):
  return values if multiplicity is None else values * multiplicity


def solve_kappa(eigenvalues, n, ridge=0.0, multiplicity=None):
  """Effective regularisation kappa; Simon et al. 2021 (eigenlearning), eq. (1).

  Solves sum_i lambda_i / (lambda_i + kappa) + ridge / kappa = n. With
  ridge = 0 and n at or above the number of nonzero eigenvalues there is no
  positive solution and kappa = 0 is returned.
  """
  lam = jnp.asarray(eigenvalues)
  n = jnp.asarray(n, lam.dtype)
  ridge = jnp.asarray(ridge, lam.dtype)

  def excess(log_k):
    k = jnp.exp(log_k)
    return jnp.sum(_weighted(lam / (lam + k), multiplicity)) + ridge / k - n

  total = jnp.sum(_weighted(lam, multiplicity))
  hi = jnp.log((total + ridge) / n) + 1.0  # excess(hi) < 0
  tiny = jnp.finfo(lam.dtype).tiny
  lo = jnp.log(jnp.maximum(jnp.min(jnp.where(lam > 0, lam, total)) * 1e-12,
                           tiny * 1e6)) - 20.0

  def body(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    pos = excess(mid) > 0
    return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

  lo_f = excess(lo)
  lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, body, (lo, hi))
  kappa = jnp.exp(0.5 * (lo + hi))
  # No root above the floor: interpolating regime with n >= rank.
  return jnp.where(lo_f > 0, kappa, 0.0)


@dataclasses.dataclass(frozen=True)
class LearningCurve:
  """Predicted errors at each sample count (arrays shaped like `n`)."""
  n: np.ndarray
  kappa: np.ndarray
  overfitting: np.ndarray  # E0
  test_mse: np.ndarray
  train_mse: np.ndarray


def _one(lam, v2, n, ridge, noise, multiplicity):
  kappa = solve_kappa(lam, n, ridge, multiplicity)
  learn = jnp.where(lam > 0, lam / (lam + kappa), 0.0)
  sum_l2 = jnp.sum(_weighted(learn**2, multiplicity))
  e0 = n / (n - sum_l2)
  e0 = jnp.where(n > sum_l2, e0, jnp.inf)
  bias = jnp.sum((1.0 - learn)**2 * v2)
  test = e0 * (bias + noise)
  train = jnp.where(kappa > 0, (ridge / (n * kappa))**2 * test, 0.0)
  return kappa, e0, test, train


_one_jit = jax.jit(jax.vmap(_one, in_axes=(None, None, 0, None, None, None)))


def learnabilities(eigenvalues, n, *, ridge=0.0, multiplicity=None):
  """Per-mode learnability L_i = lambda_i / (lambda_i + kappa); Simon et al. 2021, eq. (2)."""
  lam = jnp.asarray(eigenvalues)
  kappa = solve_kappa(lam, n, ridge, multiplicity)
  return lam / (lam + kappa)


def learning_curve(eigenvalues, target_coeffs, n, *, ridge=0.0, noise=0.0,
                   multiplicity: Optional[np.ndarray] = None) -> LearningCurve:
  """Predicted test and train MSE of kernel ridge regression; Simon et al. 2021, eqs. (1)-(4).

  Args:
    eigenvalues: (modes,) kernel eigenvalues, non-negative, w.r.t. the data
      distribution.
    target_coeffs: (modes,) target coefficients v_i in the eigenbasis. With
      `multiplicity`, the square of entry i is the total target power in the
      i-th block of degenerate modes.
    n: sample count(s), scalar or 1-D, positive.
    ridge: ridge of the predictor k(x, X)(K + ridge I)^-1 y, >= 0.
    noise: label-noise variance, >= 0.
    multiplicity: optional (modes,) number of degenerate modes sharing each
      eigenvalue (e.g. spherical-harmonic degeneracies).

  Returns:
    A `LearningCurve` with `test_mse` (against noisy test labels, so it
    includes `noise`) and `train_mse` (against the noisy training labels).
  """
  lam = np.asarray(eigenvalues)
  v = np.asarray(target_coeffs)
  if lam.ndim != 1 or v.shape != lam.shape:
    raise ValueError("`eigenvalues` and `target_coeffs` must be 1-D of the same "
                     f"length, got {lam.shape} and {v.shape}.")
  if not np.all(np.isfinite(lam)) or np.any(lam < 0):
    raise ValueError("`eigenvalues` must be finite and non-negative.")
  if not np.all(np.isfinite(v)):
    raise ValueError("`target_coeffs` must be finite.")
  n_arr = np.atleast_1d(np.asarray(n, np.float64))
  if n_arr.ndim != 1 or np.any(~np.isfinite(n_arr)) or np.any(n_arr <= 0):
    raise ValueError(f"`n` must be positive, got {n!r}.")
  if not (np.isscalar(ridge) and np.isfinite(ridge) and ridge >= 0):
    raise ValueError(f"`ridge` must be a non-negative number, got {ridge!r}.")
  if not (np.isscalar(noise) and np.isfinite(noise) and noise >= 0):
    raise ValueError(f"`noise` must be a non-negative number, got {noise!r}.")
  mult = None
  if multiplicity is not None:
    mult = np.asarray(multiplicity)
    if mult.shape != lam.shape or np.any(mult <= 0):
      raise ValueError("`multiplicity` must be positive, shaped like "
                       "`eigenvalues`.")
  dtype = jnp.result_type(float)
  lam_j = jnp.asarray(lam, dtype)
  v2 = jnp.asarray(v, dtype)**2
  mult_j = None if mult is None else jnp.asarray(mult, dtype)
  kappa, e0, test, train = _one_jit(lam_j, v2, jnp.asarray(n_arr, dtype),
                                    jnp.asarray(ridge, dtype),
                                    jnp.asarray(noise, dtype), mult_j)
  shape = np.shape(n)
  reshape = lambda a: np.asarray(a).reshape(shape)
  return LearningCurve(n=np.asarray(n), kappa=reshape(kappa),
                       overfitting=reshape(e0), test_mse=reshape(test),
                       train_mse=reshape(train))


def empirical_spectrum(gram, target_values):
  """Eigenvalues and target coefficients from a kernel matrix on M samples.

  The Nystrom estimate of the kernel's eigensystem under the data
  distribution (Bordelon, Canatar and Pehlevan 2020, Sec. 4): lambda_i =
  eig(K) / M and v_i = <u_i, f(X)> / sqrt(M) for orthonormal eigenvectors u_i.
  Returns NumPy float64 arrays sorted by decreasing eigenvalue.
  """
  k = np.asarray(gram, np.float64)
  f = np.asarray(target_values, np.float64)
  if k.ndim != 2 or k.shape[0] != k.shape[1]:
    raise ValueError(f"`gram` must be square, got shape {k.shape}.")
  if f.shape != (k.shape[0],):
    raise ValueError(f"`target_values` must have shape ({k.shape[0]},), got "
                     f"{f.shape}.")
  m = k.shape[0]
  lam, u = np.linalg.eigh(0.5 * (k + k.T))
  lam, u = lam[::-1], u[:, ::-1]
  return np.maximum(lam, 0.0) / m, u.T @ f / np.sqrt(m)
