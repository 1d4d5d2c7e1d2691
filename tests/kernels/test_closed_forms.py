"""Closed-form dual kernels against independent computations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from kernels import stax


def sqrt_cov(q11, q12, q22):
  """A matrix L with L L^T = [[q11, q12], [q12, q22]] (also when singular)."""
  lam, vec = np.linalg.eigh(np.array([[q11, q12], [q12, q22]]))
  return vec * np.sqrt(np.maximum(lam, 0))


def quad2d(fn, q11, q12, q22, deg=120):
  """E[fn(u) fn(v)] by tensor Gauss-Hermite quadrature in numpy (float64)."""
  z, w = np.polynomial.hermite_e.hermegauss(deg)
  w = w / np.sqrt(2 * np.pi)
  L = sqrt_cov(q11, q12, q22)
  z1, z2 = np.meshgrid(z, z, indexing="ij")
  u = L[0, 0] * z1 + L[0, 1] * z2
  v = L[1, 0] * z1 + L[1, 1] * z2
  return float(np.sum(np.outer(w, w) * fn(u) * fn(v)))


def quad_polar(fn, q11, q12, q22, degree):
  """E[fn(u) fn(v)] for fn positively homogeneous of the given degree (0 or 1), by polar coordinates.

  E = c_degree * int_0^{2 pi} fn(u(a)) fn(v(a)) da with (u, v)(a) = L (cos a, sin a): the radial
  integral is exact (int r^{2 degree + 1} e^{-r^2/2} dr / (2 pi) = 1/(2 pi) or 1/pi).
  """
  from scipy import integrate
  L = sqrt_cov(q11, q12, q22)
  def integrand(a):
    z = np.array([np.cos(a), np.sin(a)])
    u, v = L @ z
    return fn(u) * fn(v)
  val, _ = integrate.quad(integrand, 0, 2 * np.pi, limit=400, epsabs=1e-13, epsrel=1e-12)
  return val * (1 / np.pi if degree == 1 else 1 / (2 * np.pi))


def angle(x, y):
  """Angle between vectors, stable at 0 and pi: 2 atan2(|x^ - y^|, |x^ + y^|)."""
  a, b = x / np.linalg.norm(x), y / np.linalg.norm(y)
  return 2 * np.arctan2(np.linalg.norm(a - b), np.linalg.norm(a + b))


def arccos1(x, y):
  """Cho & Saul (2009) arc-cosine kernel of order 1, written from its definition."""
  nx, ny = np.linalg.norm(x), np.linalg.norm(y)
  theta = angle(x, y)
  return nx * ny / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))


def arccos0(x, y):
  return (np.pi - angle(x, y)) / (2 * np.pi)


@pytest.fixture(autouse=True)
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


def test_relu_one_layer_is_arc_cosine_kernel():
  rng = np.random.RandomState(0)
  x = rng.randn(6, 5)
  d = x.shape[1]
  w_std = 1.3
  _, _, kfn = stax.serial(stax.Dense(7, W_std=w_std), stax.Relu(), stax.Dense(1))
  k = kfn(x, None, ("nngp", "ntk"))
  # First layer pre-activation covariance is w_std^2 x.y / d.
  s = w_std / np.sqrt(d)
  nngp = np.array([[arccos1(s * a, s * b) for b in x] for a in x])
  np.testing.assert_allclose(k.nngp, nngp, rtol=1e-10)
  # NTK: Theta = nngp + (w_std^2 x.y/d) * E[relu'(u) relu'(v)] (readout W_std = 1).
  q0 = x @ x.T / d
  ntk = nngp + w_std ** 2 * q0 * np.array([[arccos0(a, b) for b in x] for a in x])
  np.testing.assert_allclose(k.ntk, ntk, rtol=1e-10)


@pytest.mark.parametrize("layer,fn,dfn", [
    (stax.Relu(), lambda t: np.maximum(t, 0), lambda t: (t > 0) * 1.0),
    (stax.LeakyRelu(0.2), lambda t: np.where(t > 0, t, 0.2 * t), lambda t: np.where(t > 0, 1, .2)),
    (stax.ABRelu(-0.5, 2.0), lambda t: np.where(t > 0, 2 * t, -0.5 * t),
     lambda t: np.where(t > 0, 2.0, -0.5)),
    (stax.Abs(), np.abs, np.sign),
    (stax.Erf(1.3, 0.7, 0.2), lambda t: 1.3 * special.erf(0.7 * t) + 0.2,
     lambda t: 1.3 * 0.7 * 2 / np.sqrt(np.pi) * np.exp(-(0.7 * t) ** 2)),
    (stax.Gelu(), lambda t: t * special.ndtr(t),
     lambda t: special.ndtr(t) + t * np.exp(-t ** 2 / 2) / np.sqrt(2 * np.pi)),
])
@pytest.mark.parametrize("q", [(1.0, 0.3, 2.0), (0.5, -0.45, 0.7), (2.0, 1.99, 2.0),
                               (1.5, 1.5, 1.5)])
def test_dual_matches_quadrature(layer, fn, dfn, q):
  q11, q12, q22 = q
  kernel, dot = layer.dual(jnp.array(q11), jnp.array(q12), jnp.array(q22), True)
  if isinstance(layer, stax.ABRelu):  # piecewise linear: exact radial integral
    np.testing.assert_allclose(kernel, quad_polar(fn, q11, q12, q22, 1), rtol=1e-7)
    np.testing.assert_allclose(dot, quad_polar(dfn, q11, q12, q22, 0), rtol=1e-6, atol=1e-7)
  else:
    np.testing.assert_allclose(kernel, quad2d(fn, q11, q12, q22), rtol=1e-8)
    np.testing.assert_allclose(dot, quad2d(dfn, q11, q12, q22), rtol=1e-7)


def test_numerical_activation_converges_to_closed_form():
  """ElementwiseNumerical of erf and gelu converges to the closed forms as deg grows."""
  rng = np.random.RandomState(1)
  x1, x2 = rng.randn(5, 4), rng.randn(3, 4)
  for closed, fn in [(stax.Erf(), jax.scipy.special.erf),
                     (stax.Gelu(), lambda t: jax.nn.gelu(t, approximate=False))]:
    def kernels(act):
      net = stax.serial(stax.Dense(8, 1.5, 0.2), act, stax.Dense(8, 1.2, 0.1), act,
                        stax.Dense(1))
      return net.kernel_fn(x1, x2, ("nngp", "ntk"))
    exact = kernels(closed)
    errs = []
    for deg in (8, 24, 96):
      k = kernels(stax.ElementwiseNumerical(fn, deg))
      errs.append(max(float(np.max(np.abs(k.nngp - exact.nngp)) / np.max(np.abs(exact.nngp))),
                      float(np.max(np.abs(k.ntk - exact.ntk)) / np.max(np.abs(exact.ntk)))))
    print(type(closed).__name__, "relative error at deg 8, 24, 96:", errs)
    assert errs[0] > errs[1] > errs[2] or errs[2] < 1e-12
    assert errs[2] < 1e-5


@pytest.mark.parametrize("name", ["sign", "rectified_monomial", "monomial"])
def test_diagonal_follows_its_one_dimensional_recursion_through_depth(name):
  # The NNGP diagonal of depth x (Dense -> phi) obeys q <- W^2 E[phi(u)^2] + b^2, u ~ N(0, q):
  # Sign 1, RectifiedMonomial(2) 3 q^2 / 2, Monomial(2) 3 q^2. neural-tangents 0.6.5 drifts
  # here (Sign: 2.2525 -> 1.62 at depth 5; RectifiedMonomial: NaN), in float64 too.
  act, moment, w = {"sign": (stax.Sign(), lambda q: 1.0, 1.5),
                    "rectified_monomial": (stax.RectifiedMonomial(2), lambda q: 1.5 * q ** 2, 1.0),
                    "monomial": (stax.Monomial(2), lambda q: 3 * q ** 2, 0.8)}[name]
  x = np.random.RandomState(0).randn(6, 40)
  layers = []
  for _ in range(5):
    layers += [stax.Dense(64, W_std=w, b_std=0.05), act]
  nngp = np.asarray(stax.serial(*layers, stax.Dense(1, W_std=w, b_std=0.05)).kernel_fn(
      x, None, "nngp"))
  q = w ** 2 * np.sum(x ** 2, 1) / 40 + 0.05 ** 2
  for _ in range(5):
    q = w ** 2 * moment(q) + 0.05 ** 2
  np.testing.assert_allclose(np.diag(nngp), q, rtol=1e-12)
  assert np.all(np.isfinite(nngp))
