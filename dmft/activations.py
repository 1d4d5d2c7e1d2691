"""Activation functions for the DMFT solvers and their Gaussian kernel maps.

An activation is given as a name ('relu', 'erf', 'tanh', 'gelu', 'linear',
'abs', 'leaky_relu'), a callable acting elementwise on arrays, or a layer of
`kernels.stax` that exposes the elementwise function as `.fn`.
"""
import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

_NAMES = ("relu", "erf", "tanh", "gelu", "linear", "identity", "abs",
          "leaky_relu", "sigmoid", "softplus", "sin")


@dataclasses.dataclass(frozen=True)
class Activation:
  """An elementwise nonlinearity.

  Attributes:
    fn: the elementwise function.
    name: a short name ('custom' for user callables).
    ab: (a, b) when the function is a*min(x, 0) + b*max(x, 0) (piecewise
      linear; closed-form Gaussian kernels), else None.
    closed_form: 'erf' or 'piecewise_linear' when Gaussian kernels have a
      closed form, None when they are computed by quadrature.
    dual: for `kernels.stax` activations, the layer's exact Gaussian dual
      dual(q11, q12, q22, need_dot) -> (E phi phi, E phi' phi').
  """
  fn: Callable[[jax.Array], jax.Array]
  name: str = "custom"
  ab: Optional[tuple] = None
  closed_form: Optional[str] = None
  dual: Optional[Callable] = None

  def derivative(self, x):
    """Elementwise derivative of `fn`."""
    if self.ab is not None:
      a, b = self.ab
      return jnp.where(x > 0, b, a).astype(x.dtype)
    return jnp.vectorize(jax.grad(lambda v: self.fn(v)))(x)

  def __call__(self, x):
    return self.fn(x)


@functools.lru_cache(maxsize=None)
def _piecewise(a, b, name):
  a, b = float(a), float(b)
  return Activation(lambda x: a * jnp.minimum(x, 0) + b * jnp.maximum(x, 0),
                    name=name, ab=(a, b), closed_form="piecewise_linear")


def get(activation) -> Activation:
  """Resolves a name, callable or stax activation layer to an `Activation`.

  Args:
    activation: see the module docstring.

  Returns:
    An `Activation`.

  Raises:
    ValueError: unknown name.
    TypeError: anything that is not a name, callable or layer with `.fn`.
  """
  if isinstance(activation, Activation):
    return activation
  if isinstance(activation, str):
    return _from_name(activation.lower())
  return _from_object(activation)


@functools.lru_cache(maxsize=None)
def _from_name(name):
  """Cached so that equal names give equal (hashable, jit-static) objects."""
  result = _named(name)
  if result is None:
    raise ValueError(f"activation must be one of {_NAMES}, a callable or a "
                     f"stax activation layer; got '{name}'")
  return result


def _named(name):
  """The named activation, or None."""
  if name:
    if name == "relu":
      return _piecewise(0.0, 1.0, "relu")
    if name in ("linear", "identity"):
      return _piecewise(1.0, 1.0, "linear")
    if name == "abs":
      return _piecewise(-1.0, 1.0, "abs")
    if name == "leaky_relu":
      return _piecewise(0.01, 1.0, "leaky_relu")
    if name == "erf":
      return Activation(jax.scipy.special.erf, "erf", closed_form="erf")
    if name == "tanh":
      return Activation(jnp.tanh, "tanh")
    if name == "gelu":
      return Activation(lambda x: jax.nn.gelu(x, approximate=False), "gelu")
    if name == "sigmoid":
      return Activation(jax.nn.sigmoid, "sigmoid")
    if name == "softplus":
      return Activation(jax.nn.softplus, "softplus")
    if name == "sin":
      return Activation(jnp.sin, "sin")
  return None


def _from_object(activation):
  """Activation from a stax layer or a callable."""
  layer_name = type(activation).__name__.lower()
  fn = getattr(activation, "fn", None)
  dual = getattr(activation, "dual", None)
  if fn is not None and callable(fn) and callable(dual):
    ab = None
    if layer_name == "abrelu":
      ab = (float(activation.a), float(activation.b))
    return Activation(fn, layer_name, ab=ab, dual=dual)
  if fn is not None and callable(fn):
    # A kernels.stax activation layer: recognise the piecewise-linear ones.
    if layer_name == "relu":
      return _piecewise(0.0, 1.0, "relu")
    if layer_name == "abs":
      return _piecewise(-1.0, 1.0, "abs")
    if layer_name == "erf":
      return Activation(fn, "erf", closed_form="erf")
    if layer_name == "leakyrelu":
      alpha = getattr(activation, "alpha", None)
      if alpha is not None:
        return _piecewise(alpha, 1.0, "leaky_relu")
    if layer_name == "abrelu":
      a, b = getattr(activation, "a", None), getattr(activation, "b", None)
      if a is not None and b is not None:
        return _piecewise(a, b, "abrelu")
    return Activation(fn, layer_name or "custom")
  if callable(activation):
    return Activation(activation, getattr(activation, "__name__", "custom"))
  raise TypeError("activation must be a name, a callable or a stax activation "
                  f"layer with `.fn`; got {type(activation).__name__}")


def _gauss_hermite(n):
  x, w = np.polynomial.hermite_e.hermegauss(n)
  return x, w / np.sqrt(2 * np.pi)


def gaussian_kernels(act: Activation, cov, n_quad: int = 48):
  """E[phi(h_a) phi(h_b)] and E[phi'(h_a) phi'(h_b)] for h ~ N(0, cov).

  Cho and Saul (2009), arc-cosine kernels, Eq. (6) for piecewise-linear
  activations; Williams (1997), Eq. (11) for erf; two-dimensional
  Gauss-Hermite quadrature for other activations.

  Args:
    act: an `Activation`.
    cov: (Q, Q) covariance matrix.
    n_quad: quadrature nodes per dimension (used only without closed form).

  Returns:
    (phi_kernel, dphi_kernel), each (Q, Q).
  """
  cov = jnp.asarray(cov)
  d = jnp.maximum(jnp.diag(cov), 0.0)
  k11, k22 = d[:, None], d[None, :]
  if act.dual is not None:
    phi, dphi = act.dual(k11, cov, k22, True)
    return phi, dphi
  if act.closed_form == "piecewise_linear":
    a, b = act.ab
    norm = jnp.sqrt(k11 * k22)
    safe = jnp.where(norm > 0, norm, 1.0)
    c = jnp.clip(jnp.where(norm > 0, cov / safe, 0.0), -1.0, 1.0)
    theta = jnp.arccos(c)
    pi = jnp.pi

    def j1(th, cc):
      return norm / (2 * pi) * (jnp.sin(th) + (pi - th) * cc)

    def s0(th):
      return (pi - th) / (2 * pi)

    theta_neg = pi - theta
    phi = (a * a + b * b) * j1(theta, c) - 2 * a * b * j1(theta_neg, -c)
    dphi = (a * a + b * b) * s0(theta) + 2 * a * b * s0(theta_neg)
    return phi, dphi
  if act.closed_form == "erf":
    den = (1 + 2 * k11) * (1 + 2 * k22)
    phi = 2 / jnp.pi * jnp.arcsin(jnp.clip(2 * cov / jnp.sqrt(den), -1, 1))
    dphi = 4 / jnp.pi / jnp.sqrt(jnp.maximum(den - 4 * cov ** 2, 1e-30))
    return phi, dphi
  nodes, weights = _gauss_hermite(n_quad)
  nodes = jnp.asarray(nodes, cov.dtype)
  weights = jnp.asarray(weights, cov.dtype)
  s1 = jnp.sqrt(k11)
  rho = jnp.where(s1 > 0, cov / jnp.where(s1 > 0, s1, 1.0), 0.0)  # cov / s1
  s2c = jnp.sqrt(jnp.maximum(k22 - rho ** 2, 0.0))
  xi, eta = nodes[:, None], nodes[None, :]
  w2 = weights[:, None] * weights[None, :]

  def pair(s1_, rho_, s2c_):
    h1 = s1_ * xi
    h2 = rho_ * xi + s2c_ * eta
    f = jnp.sum(w2 * act.fn(h1) * act.fn(h2))
    g = jnp.sum(w2 * act.derivative(h1) * act.derivative(h2))
    return f, g

  s1b = jnp.broadcast_to(s1, cov.shape)
  phi, dphi = jax.vmap(jax.vmap(pair))(s1b, rho, s2c)
  phi = 0.5 * (phi + phi.T)
  dphi = 0.5 * (dphi + dphi.T)
  return phi, dphi
