"""kernels.linearize: linearize and taylor_expand against closed forms and convergence rates."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import linearize as lin
from kernels import slopes, stax


def _poly(p, x):
  return p["a"] ** 3 * x + jnp.sin(p["b"]) * x ** 2


def test_taylor_expansion_of_a_polynomial_is_its_series():
  p0 = {"a": jnp.float32(0.7), "b": jnp.float32(0.3)}
  p1 = {"a": jnp.float32(1.1), "b": jnp.float32(0.5)}
  x = jnp.float32(1.3)
  da, db = 0.4, 0.2
  # Closed forms: a^3 expands exactly at degree 3; sin(b) term by term.
  expected = {
      0: _poly(p0, x),
      1: _poly(p0, x) + 3 * 0.7 ** 2 * da * x + np.cos(0.3) * db * x ** 2,
      2: _poly(p0, x) + 3 * 0.7 ** 2 * da * x + np.cos(0.3) * db * x ** 2
         + 3 * 0.7 * da ** 2 * x - np.sin(0.3) * db ** 2 / 2 * x ** 2,
  }
  for deg, val in expected.items():
    np.testing.assert_allclose(lin.taylor_expand(_poly, p0, deg)(p1, x), val, rtol=1e-5)
  np.testing.assert_allclose(lin.linearize(_poly, p0)(p1, x), expected[1], rtol=1e-5)
  # Degree 3 is exact in a; the sin series error is db^4/24 * x^2.
  err = abs(float(lin.taylor_expand(_poly, p0, 3)(p1, x) - _poly(p1, x)))
  assert err < np.sin(0.5) * db ** 4 / 24 * x ** 2 * 1.01 + 1e-6


def test_linearized_network_error_is_second_order():
  """|f(p0 + e v) - f_lin| falls as e^2, |f - taylor_2| as e^3 (fitted slopes printed)."""
  net = stax.serial(stax.Dense(64, 1.5, 0.1), stax.Erf(), stax.Dense(2))
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 3))
  with jax.enable_x64(True):
    _, p0 = net.init_fn(jax.random.PRNGKey(1), x.shape)
    p0 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), p0)
    v = jax.tree_util.tree_map(lambda a: jax.random.normal(jax.random.PRNGKey(2), a.shape,
                                                           a.dtype), p0)
    f_lin = lin.linearize(net.apply_fn, p0)
    f_t2 = lin.taylor_expand(net.apply_fn, p0, 2)
    eps = np.array([0.02, 0.01, 0.005, 0.0025])
    e1, e2 = [], []
    for e in eps:
      p = jax.tree_util.tree_map(lambda a, b: a + e * b, p0, v)
      f = net.apply_fn(p, x)
      e1.append(float(jnp.max(jnp.abs(f - f_lin(p, x)))))
      e2.append(float(jnp.max(jnp.abs(f - f_t2(p, x)))))
    np.testing.assert_allclose(f_lin(p0, x), net.apply_fn(p0, x), rtol=1e-12)
  fit1, fit2 = slopes.loglog_fit(eps, e1), slopes.loglog_fit(eps, e2)
  print("linearize error vs step:", fit1, "; taylor_expand(2):", fit2)
  assert abs(fit1.slope - 2) < 0.15 and abs(fit2.slope - 3) < 0.2


def test_flax_module_is_accepted():
  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      return nn.Dense(1)(jnp.tanh(nn.Dense(16)(x)))

  m, x = MLP(), jnp.ones((3, 4))
  v0 = m.init(jax.random.PRNGKey(0), x)
  v1 = jax.tree_util.tree_map(lambda a: a + 1e-3, v0)
  got = lin.linearize(m, v0)(v1, x)
  _, tangent = jax.jvp(lambda v: m.apply(v, x), (v0,), (jax.tree_util.tree_map(
      lambda a, b: a - b, v1, v0),))
  np.testing.assert_allclose(got, m.apply(v0, x) + tangent, rtol=1e-6)
  with pytest.raises(ValueError, match="structure"):
    lin.linearize(m, v0)({"params": {}}, x)
  with pytest.raises(ValueError, match="degree"):
    lin.taylor_expand(m, v0, -1)
  with pytest.raises(TypeError, match="f must be"):
    lin.linearize(3, v0)
