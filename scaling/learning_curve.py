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

With ridge = 0 and n >= M, the number of positive eigenvalues, there is no
root: kappa = 0, every mode with lambda_i > 0 is learned, and the predictor
is least squares on M features: E0 = n / (n - M) and train_mse = (n - M)/n
(noise + unlearnable power), the ridge -> 0 limit of the formulas above.

All functions are jittable and follow the input dtype (float32 by default,
float64 under `jax_enable_x64`); kappa is found by bisection in log kappa,
with L_i = sigmoid(log lambda_i - log kappa), so spectra spanning any range
of magnitudes are safe in float32.
"""
import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from kernels import validation

_BISECTION_STEPS = 200
# The bracket extends this far (in log kappa) beyond the smallest scale.
_LOG_MARGIN = 40.0


def _weighted(values, multiplicity):
  return values if multiplicity is None else values * multiplicity


def _log_kappa(lam, n, ridge, multiplicity):
  """(log kappa, has_root) of eq. (1) of Simon et al. 2021, by bisection in log kappa.

  Learnabilities are evaluated as sigmoid(log lambda_i - log kappa), so no
  sum or ratio of eigenvalues is formed and any dynamic range of the
  spectrum is safe in float32. Without a positive root (ridge = 0 and n at
  or above the number of positive eigenvalues) log kappa is -inf.
  """
  pos = lam > 0
  log_lam = jnp.log(jnp.where(pos, lam, 1.0))
  log_w = jnp.where(pos, log_lam, -jnp.inf)
  if multiplicity is not None:
    log_w = log_w + jnp.log(multiplicity)
  log_ridge = jnp.where(ridge > 0, jnp.log(jnp.where(ridge > 0, ridge, 1.0)),
                        -jnp.inf)
  log_n = jnp.log(n)

  def excess(t):
    # sum_i L_i - n with L_i = 1 - (1 - L_i) where L_i > 1/2: the counts
    # cancel exactly and only terms <= 1/2 are summed, so the excess is
    # accurate even where sum_i L_i is close to n.
    z = log_lam - t
    big = pos & (z > 0)
    small = jnp.where(pos, jax.nn.sigmoid(-jnp.abs(z)), 0.0)
    ones = jnp.where(big, 1.0, 0.0)
    return ((jnp.sum(_weighted(ones, multiplicity)) - n)
            + jnp.sum(_weighted(jnp.where(big, -small, small), multiplicity))
            + jnp.exp(log_ridge - t))

  # At hi, sum lambda/(lambda + kappa) + ridge/kappa < (total + ridge)/kappa
  # = n/e; at lo every positive mode is learned and ridge/kappa >= n e^40.
  hi = jnp.logaddexp(jax.scipy.special.logsumexp(log_w), log_ridge) - log_n
  hi = jnp.where(jnp.isfinite(hi), hi, 0.0) + 1.0
  lo = jnp.minimum(jnp.min(jnp.where(pos, log_lam, jnp.inf)),
                   jnp.where(ridge > 0, log_ridge - log_n, jnp.inf))
  lo = jnp.minimum(lo, hi) - _LOG_MARGIN
  has_root = excess(lo) > 0

  def body(_, bounds):
    lo, hi = bounds
    mid = 0.5 * (lo + hi)
    above = excess(mid) > 0
    return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

  lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, body, (lo, hi))
  return jnp.where(has_root, 0.5 * (lo + hi), -jnp.inf), has_root


def check_spectrum(eigenvalues, n, ridge, multiplicity):
  """ValueError naming the argument unless eigenvalues are finite and >= 0, n finite and
  > 0, ridge finite and >= 0, and multiplicity (optional) finite, > 0 and shaped like
  the eigenvalues. Values being traced (inside jit or grad) are not checked."""
  def concrete(v):
    return v is not None and validation.is_concrete(v)

  lam = np.asarray(eigenvalues, np.float64) if concrete(eigenvalues) else None
  if lam is not None and (lam.ndim != 1 or not np.all(np.isfinite(lam)) or np.any(lam < 0)):
    raise ValueError("`eigenvalues` must be 1-D, finite and non-negative.")
  if concrete(n):
    n_arr = np.asarray(n, np.float64)
    if n_arr.ndim > 1 or not np.all(np.isfinite(n_arr)) or np.any(n_arr <= 0):
      raise ValueError(f"`n` must be positive, got {n!r}.")
  if concrete(ridge):
    r = np.asarray(ridge, np.float64)
    if r.ndim != 0 or not np.isfinite(r) or r < 0:
      raise ValueError(f"`ridge` must be a non-negative number, got {ridge!r}.")
  if concrete(multiplicity):
    m = np.asarray(multiplicity, np.float64)
    if ((lam is not None and m.shape != lam.shape) or not np.all(np.isfinite(m))
        or np.any(m <= 0)):
      raise ValueError("`multiplicity` must be finite and positive, shaped like "
                       "`eigenvalues`.")


def _prepare(eigenvalues, n, ridge, multiplicity=None):
  check_spectrum(eigenvalues, n, ridge, multiplicity)
  lam = jnp.asarray(eigenvalues)
  lam = lam if jnp.issubdtype(lam.dtype, jnp.floating) else lam.astype(float)
  return lam, jnp.asarray(n, lam.dtype), jnp.asarray(ridge, lam.dtype)


def solve_kappa(eigenvalues, n, ridge=0.0, multiplicity=None):
  """Effective regularisation kappa; Simon et al. 2021 (eigenlearning), eq. (1).

  Solves sum_i lambda_i / (lambda_i + kappa) + ridge / kappa = n. With
  ridge = 0 and n at or above the number of nonzero eigenvalues there is no
  positive solution and kappa = 0 is returned.
  """
  lam, n, ridge = _prepare(eigenvalues, n, ridge, multiplicity)
  return jnp.exp(_log_kappa(lam, n, ridge, multiplicity)[0])


@dataclasses.dataclass(frozen=True)
class LearningCurve:
  """Predicted errors at each sample count (arrays shaped like `n`)."""
  n: np.ndarray
  kappa: np.ndarray
  overfitting: np.ndarray  # E0
  test_mse: np.ndarray
  train_mse: np.ndarray


def _learn(lam, log_kappa):
  """(L_i, 1 - L_i) = sigmoid(+-(log lambda_i - log kappa)), 0 and 1 where lambda_i = 0."""
  pos = lam > 0
  z = jnp.log(jnp.where(pos, lam, 1.0)) - log_kappa
  return (jnp.where(pos, jax.nn.sigmoid(z), 0.0),
          jnp.where(pos, jax.nn.sigmoid(-z), 1.0))


def _one(lam, v2, n, ridge, noise, multiplicity):
  """kappa, E0, test and train MSE at one n; Simon et al. 2021, eqs. (1)-(4).

  With s = n - sum_i L_i (= ridge / kappa at a root of eq. (1)), E0 = n / (s +
  sum_i L_i (1 - L_i)) and train = (s / n)^2 test, the eq. (4) factor
  (ridge / (n kappa))^2 without a division by kappa. At ridge = 0 and n >= M
  positive modes (no root, kappa = 0, L_i = 1) this is ordinary least
  squares: E0 = n / (n - M), train = (n - M)/n (noise + unlearnable power);
  E[RSS] = (n - M) sigma^2, Hastie, Tibshirani and Friedman 2009, eq. (3.8).
  """
  log_kappa, has_root = _log_kappa(lam, n, ridge, multiplicity)
  learn, unlearn = _learn(lam, log_kappa)
  slack = jnp.where(has_root, jnp.exp(jnp.log(ridge) - log_kappa),
                    n - jnp.sum(_weighted(learn, multiplicity)))
  slack = jnp.maximum(slack, 0.0)
  denom = slack + jnp.sum(_weighted(learn * unlearn, multiplicity))
  e0 = jnp.where(denom > 0, n / jnp.where(denom > 0, denom, 1.0), jnp.inf)
  power = jnp.sum(unlearn**2 * v2) + noise
  test = jnp.where(power > 0, e0 * power, 0.0)
  train = jnp.where(slack > 0, (slack / n)**2 * test, 0.0)
  return jnp.exp(log_kappa), e0, test, train


_one_jit = jax.jit(jax.vmap(_one, in_axes=(None, None, 0, None, None, None)))


def learnabilities(eigenvalues, n, *, ridge=0.0, multiplicity=None):
  """Per-mode learnability L_i = lambda_i / (lambda_i + kappa); Simon et al. 2021, eq. (2)."""
  lam, n, ridge = _prepare(eigenvalues, n, ridge, multiplicity)
  return _learn(lam, _log_kappa(lam, n, ridge, multiplicity)[0])[0]


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
    With ridge = 0 and n >= M positive eigenvalues it is least squares:
    kappa = 0, train_mse = (n - M)/n (noise + power of modes with lambda = 0).
  """
  lam = np.asarray(eigenvalues)
  v = np.asarray(target_coeffs)
  if lam.ndim != 1 or v.shape != lam.shape:
    raise ValueError("`eigenvalues` and `target_coeffs` must be 1-D of the same "
                     f"length, got {lam.shape} and {v.shape}.")
  check_spectrum(lam, n, ridge, multiplicity)
  if not np.all(np.isfinite(v)):
    raise ValueError("`target_coeffs` must be finite.")
  n_arr = np.atleast_1d(np.asarray(n, np.float64))
  if not (np.isscalar(noise) and np.isfinite(noise) and noise >= 0):
    raise ValueError(f"`noise` must be a non-negative number, got {noise!r}.")
  mult = None if multiplicity is None else np.asarray(multiplicity)
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
  if not (np.all(np.isfinite(k)) and np.all(np.isfinite(f))):
    raise ValueError("`gram` and `target_values` must be finite.")
  asym = float(np.max(np.abs(k - k.T), initial=0.0))
  if asym > 1e-5 * max(float(np.max(np.abs(k), initial=0.0)), np.finfo(float).tiny):
    raise ValueError(f"`gram` must be symmetric (a kernel matrix); max |K - K^T| = {asym:.3g}.")
  m = k.shape[0]
  lam, u = np.linalg.eigh(0.5 * (k + k.T))
  lam, u = lam[::-1], u[:, ::-1]
  return np.maximum(lam, 0.0) / m, u.T @ f / np.sqrt(m)
