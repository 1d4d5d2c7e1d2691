"""Dot-product kernels on the unit sphere S^{dim-1}: spectra and sampling.

A kernel k(x . x') on the sphere with the uniform measure has the spherical
harmonics as eigenfunctions; degree l has eigenvalue mu_l with multiplicity
N(dim, l) (Funk-Hecke theorem):

  mu_l = c_dim int_{-1}^{1} k(t) P_l(t) (1 - t^2)^{(dim-3)/2} dt,
  c_dim = Gamma(dim/2) / (sqrt(pi) Gamma((dim-1)/2)),

with P_l the Gegenbauer (Legendre) polynomial normalised to P_l(1) = 1, so
that sum_l N(dim, l) mu_l = k(1). The integral uses Gauss-Jacobi quadrature.
This is set-up work on the host (NumPy/SciPy, float64).
"""
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special


def degeneracy(dim: int, degree) -> np.ndarray:
  """Number of degree-l spherical harmonics on S^{dim-1}: N(dim, l)."""
  l = np.asarray(degree, np.float64)
  if dim < 2:
    raise ValueError(f"`dim` must be >= 2, got {dim}.")
  log_binom = (special.gammaln(l + dim - 1) - special.gammaln(l + 1)
               - special.gammaln(dim - 1))
  with np.errstate(divide="ignore", invalid="ignore"):
    n = (2 * l + dim - 2) / (l + dim - 2) * np.exp(log_binom)
  return np.where(l == 0, 1.0, np.round(n))


def legendre(dim: int, max_degree: int, t) -> np.ndarray:
  """P_l(t), l = 0..max_degree, normalised to P_l(1) = 1; shape (degrees,) + t.shape.

  Three-term recurrence (l + dim - 2) P_{l+1} = (2l + dim - 2) t P_l - l P_{l-1}.
  """
  t = np.asarray(t, np.float64)
  out = np.empty((max_degree + 1,) + t.shape)
  out[0] = 1.0
  if max_degree >= 1:
    out[1] = t
  for l in range(1, max_degree):
    out[l + 1] = ((2 * l + dim - 2) * t * out[l] - l * out[l - 1]) / (
        l + dim - 2)
  return out


def dot_product_spectrum(kernel: Callable[[np.ndarray], np.ndarray], dim: int,
                         max_degree: int, *, quadrature_points: int = 2000
                         ) -> tuple:
  """(mu_l, N(dim, l)) for l = 0..max_degree; Funk-Hecke formula (e.g. Smola et al. 2001, Thm. 2).

  Args:
    kernel: k(t) for t = x . x' in [-1, 1], vectorised (NumPy).
    dim: ambient dimension (the sphere is S^{dim-1}).
    max_degree: highest degree.
    quadrature_points: Gauss-Jacobi nodes.
  """
  if dim < 2:
    raise ValueError(f"`dim` must be >= 2, got {dim}.")
  if max_degree < 0:
    raise ValueError(f"`max_degree` must be >= 0, got {max_degree}.")
  a = (dim - 3) / 2.0
  nodes, weights = special.roots_jacobi(quadrature_points, a, a)
  c = np.exp(special.gammaln(dim / 2) - 0.5 * np.log(np.pi)
             - special.gammaln((dim - 1) / 2))
  k = np.asarray(kernel(nodes), np.float64)
  mu = c * legendre(dim, max_degree, nodes) @ (weights * k)
  # Quadrature round-off leaves |mu_l| ~ 1e-14 where mu_l = 0 exactly.
  mu = np.where(np.abs(mu) <= 1e-11 * np.abs(mu).max(), 0.0, mu)
  if np.any(mu < 0):
    raise ValueError("`kernel` has negative Funk-Hecke coefficients; it is "
                     "not positive definite on the sphere.")
  return mu, degeneracy(dim, np.arange(max_degree + 1))


def sample_sphere(key, num: int, dim: int, dtype=None) -> jax.Array:
  """`num` points uniform on S^{dim-1}."""
  z = jax.random.normal(key, (num, dim), dtype or jnp.result_type(float))
  return z / jnp.linalg.norm(z, axis=-1, keepdims=True)


def relu_ntk(t, depth: int = 1):
  """Bias-free ReLU NTK on the sphere, k(t) with t = x . x'; Jacot et al. 2018, eq. (5) with the arc-cosine maps of Cho and Saul 2009.

  `depth` hidden layers, NTK parameterisation with unit weight variance
  (W_std^2 = 2 for the ReLU layers absorbed into the arc-cosine
  normalisation, so k(1) = depth + 1). Works on NumPy or JAX arrays.
  """
  xp = jnp if isinstance(t, jax.Array) else np
  sigma = xp.clip(t, -1.0, 1.0)
  theta = sigma
  for _ in range(depth):
    s = xp.clip(sigma, -1.0, 1.0)
    ang = xp.arccos(s)
    sigma_new = (xp.sqrt(xp.maximum(1 - s**2, 0.0)) + (xp.pi - ang) * s) / xp.pi
    theta = sigma_new + theta * (xp.pi - ang) / xp.pi
    sigma = sigma_new
  return theta


def legendre_target(directions, coeffs, dim: int):
  """f(x) = sum_l coeffs[l] P_l(x . u_l), with the power in degree l.

  Returns (target_fn, power) where target_fn maps (num, dim) points to (num,)
  values (JAX) and power[l] = coeffs[l]^2 / N(dim, l) is the squared norm of
  the degree-l part under the uniform measure (addition theorem).
  """
  coeffs = np.asarray(coeffs, np.float64)
  max_degree = len(coeffs) - 1
  dirs = jnp.asarray(directions)

  def target_fn(x):
    t = x @ dirs.T  # (num, degrees)
    p_prev, p_cur = jnp.ones_like(t[:, 0]), t[:, 0]
    out = coeffs[0] * p_prev
    if max_degree >= 1:
      out = out + coeffs[1] * t[:, 1]
    # Evaluate P_l at each direction's own projection.
    for l in range(2, max_degree + 1):
      tl = t[:, l]
      p = [jnp.ones_like(tl), tl]
      for j in range(1, l):
        p.append(((2 * j + dim - 2) * tl * p[j] - j * p[j - 1]) / (j + dim - 2))
      out = out + coeffs[l] * p[l]
    del p_prev, p_cur
    return out

  power = coeffs**2 / degeneracy(dim, np.arange(max_degree + 1))
  return target_fn, power
