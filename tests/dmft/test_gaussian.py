"""Jitter policy of Gaussian sampling."""
import jax.numpy as jnp
import numpy as np

from dmft import gaussian


def test_rank_deficient_covariance_gets_reported_jitter():
  v = np.random.default_rng(0).standard_normal((6, 2))
  cov = jnp.asarray(v @ v.T, jnp.float32)  # rank 2
  chol, jitter = gaussian.cholesky_with_jitter(cov)
  assert np.all(np.isfinite(chol)) and 0 < float(jitter) <= 1e-2
  rel = np.linalg.norm(chol @ chol.T - cov) / np.linalg.norm(cov)
  assert rel < 1e-2


def test_indefinite_matrix_is_flagged():
  cov = jnp.diag(jnp.asarray([1.0, -1.0, 1.0]))
  chol, jitter = gaussian.cholesky_with_jitter(cov)
  assert not np.all(np.isfinite(chol)) and float(jitter) >= 0.99e-2
