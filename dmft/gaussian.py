"""Gaussian sampling with a stated jitter policy.

Jitter policy: a covariance C is factorised as C + j * mean(diag(C)) * I with
j = j0, 10 j0, ..., up to `max_jitter` (j0 = 1e-6 in float32, 1e-12 in
float64) until the Cholesky factor is finite and reproduces the jittered matrix
to a relative error of 1e-3 (float32) or 1e-8 (float64); rank-deficient
kernels (e.g. two-time kernels that barely change in time) need this. The
relative jitter used is returned so that solvers report it; a matrix that needs
more than `max_jitter` is not positive semi-definite and is reported as
non-finite.
"""
import jax
import jax.numpy as jnp

MAX_JITTER = 1e-2


def base_jitter(dtype):
  return 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-6


def _accuracy(dtype):
  return 1e-8 if jnp.dtype(dtype) == jnp.float64 else 1e-3


def cholesky_with_jitter(cov, max_jitter=MAX_JITTER):
  """Lower Cholesky factor of `cov` (+ jitter), and the relative jitter.

  Returns:
    (chol, jitter): chol is NaN when even `max_jitter` does not suffice.
  """
  cov = 0.5 * (cov + cov.T)
  dtype = cov.dtype
  scale = jnp.maximum(jnp.mean(jnp.diag(cov)), jnp.finfo(dtype).tiny)
  eye = jnp.eye(cov.shape[0], dtype=dtype)
  j0 = base_jitter(dtype)

  def factor(j):
    target = cov + j * scale * eye
    chol = jnp.linalg.cholesky(target)
    err = jnp.linalg.norm(chol @ chol.T - target) / jnp.linalg.norm(target)
    ok = jnp.all(jnp.isfinite(chol)) & (err < _accuracy(dtype))
    return chol, ok

  def cond(state):
    _, ok, j = state
    return (~ok) & (j < max_jitter)

  def body(state):
    _, _, j = state
    chol, ok = factor(10 * j)
    return chol, ok, 10 * j

  j_start = jnp.asarray(j0, dtype)
  chol, ok = factor(j_start)
  chol, ok, j = jax.lax.while_loop(cond, body, (chol, ok, j_start))
  return jnp.where(ok, chol, jnp.nan), j


def psd_sqrt(cov):
  """Symmetric square root S = C^1/2 (S S^T = C) of a PSD covariance, no jitter.

  Higham (2008), "Functions of Matrices", Thm. 6.2 (the principal square root
  by the spectral decomposition). Eigenvalues are soft-thresholded,
  max(lambda - c, 0) with c = n eps lambda_max, which removes rounding noise
  and small negative eigenvalues continuously. Unlike a Cholesky factor of a
  rank-deficient matrix (plus an adaptively chosen jitter), S is a continuous
  function of C and exactly reproduces its null space: a two-time kernel that
  is constant in time gives sources that are constant in time. Sampling with
  it therefore keeps a fixed-point map over quenched samples deterministic
  and continuous.
  """
  cov = 0.5 * (cov + cov.T)
  lam, vec = jnp.linalg.eigh(cov)
  lam_max = jnp.maximum(jnp.max(lam), jnp.finfo(cov.dtype).tiny)
  cut = cov.shape[0] * jnp.finfo(cov.dtype).eps * lam_max
  root = jnp.sqrt(jnp.maximum(lam - cut, 0.0))
  return (vec * root[None, :]) @ vec.T
