"""The float32 forms of the closed-form duals (polynomial arcsine, per-point factors)
against the float64 formulas, and the property that makes them fast: one fused loop."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import stax
from kernels.stax import elementwise
from kernels.stax import layer as layer_lib


def test_asin_f32_matches_arcsin():
  theta = np.concatenate([np.linspace(-np.pi / 2, np.pi / 2, 20001),
                          np.pi / 2 - np.logspace(-6, -1, 200), np.logspace(-30, -1, 200)])
  sin, cos_sq = np.sin(theta).astype(np.float32), (np.cos(theta) ** 2).astype(np.float32)
  got = np.asarray(elementwise.asin_f32(jnp.asarray(sin), jnp.asarray(cos_sq)), np.float64)
  # float32 rounding of the inputs moves the angle by ~6e-8 relative; the polynomial adds
  # a few times that. Near pi/2 the angle comes from the cosine, not the sine (which
  # rounds to 1 there).
  assert np.all(np.abs(got - theta) <= 4e-7 * np.abs(theta))


def _grid(n=6000, seed=0):
  """(q11, q12, q22) in float32 over eight decades of variance, correlations near +-1 included."""
  rng = np.random.default_rng(seed)
  q11, q22 = np.exp(rng.uniform(-9, 5, n)), np.exp(rng.uniform(-9, 5, n))
  rho = np.concatenate([rng.uniform(-1, 1, n // 2), 1 - np.exp(rng.uniform(-25, -1, n // 4)),
                        -1 + np.exp(rng.uniform(-25, -1, n - n // 2 - n // 4)), [1, -1, 0]])
  q11, q22 = np.append(q11, [2.0, 0.5, 0.0]), np.append(q22, [2.0, 0.5, 3.0])
  q = [v.astype(np.float32) for v in (q11, rho * np.sqrt(q11 * q22), q22)]
  ok = np.abs(q[1]) <= np.sqrt(q[0]) * np.sqrt(q[2])  # float32 rounding can leave |rho| > 1
  return [v[ok] for v in q]


def _dual(layer, q11, q12, q22, dtype):
  a, b, c = (jnp.asarray(v, dtype) for v in (q11, q12, q22))
  return layer.dual(a, b, c, True, layer.point_factors(a), layer.point_factors(c))


@pytest.mark.parametrize("layer", [stax.Erf(), stax.Erf(0.7, 1.3, 0.2), stax.Sigmoid_like(),
                                   stax.Gelu()], ids=["erf", "erf_abc", "sigmoid_like", "gelu"])
def test_float32_dual_matches_float64(layer):
  q11, q12, q22 = _grid()
  got = _dual(layer, q11, q12, q22, jnp.float32)
  with jax.enable_x64(True):
    want = [np.asarray(v) for v in _dual(layer, q11, q12, q22, jnp.float64)]
    diag1 = [np.asarray(v) for v in _dual(layer, q11, q11, q11, jnp.float64)]
    diag2 = [np.asarray(v) for v in _dual(layer, q22, q22, q22, jnp.float64)]
  for g, w, d1, d2, tol in zip(got, want, diag1, diag2, (1e-5, 3e-4)):
    g = np.asarray(g, np.float64)
    assert np.all(np.isfinite(g))
    # Relative to the scale sqrt(K(x, x) K(y, y)) of the entry (Cauchy-Schwarz).
    err = np.abs(g - w) / np.maximum(np.sqrt(d1 * d2), 1e-30)
    assert err.max() < tol, (err.max(), np.argmax(err))
    assert np.median(err) < 1e-6


@pytest.mark.parametrize("act", [stax.Erf(), stax.Gelu()], ids=["erf", "gelu"])
def test_float32_network_is_one_loop(act):
  """The (n1, n2) work of a float32 network compiles to one loop, without atan2."""
  net = stax.serial(stax.Dense(8, 1.5, 0.05), act, stax.Dense(8, 1.5, 0.05), act,
                    stax.Dense(1, 1.5, 0.05))
  x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 5)), jnp.float32)
  covs, _, _ = layer_lib.diagonal_pass(net, x, None)
  units, _ = layer_lib._plan(net)
  text = layer_lib._segment_jit.lower(net, 0, len(units), True, x, None, None, covs,
                                      None).compile().as_text()
  entry = text[text.index("ENTRY"):]
  assert "atan2" not in text
  loops = [l for l in entry.splitlines()
           if "=" in l and "f32[16,16]" in l.split("=", 1)[1][:40] and "kind=kLoop" in l]
  assert len(loops) == 1, loops


@pytest.mark.parametrize("layer", [stax.RectifiedMonomial(1), stax.RectifiedMonomial(3),
                                   stax.Polynomial([0.1, -0.4, 0.3, 0.2]), stax.Gabor()],
                         ids=["rectified1", "rectified3", "polynomial", "gabor"])
def test_per_point_forms_match_float64(layer):
  """Correlations and norms from per-point factors (no per-entry sin, cos, sqrt or
  division): finite at zero variance (Polynomial was NaN there), float32-accurate."""
  q11, q12, q22 = _grid()
  keep = (q11 < 30) & (q22 < 30)  # Gabor's and the polynomial's moments grow fast
  q11, q12, q22 = q11[keep], q12[keep], q22[keep]
  got = _dual(layer, q11, q12, q22, jnp.float32)
  with jax.enable_x64(True):
    want = [np.asarray(v) for v in _dual(layer, q11, q12, q22, jnp.float64)]
    diag1 = [np.asarray(v) for v in _dual(layer, q11, q11, q11, jnp.float64)]
    diag2 = [np.asarray(v) for v in _dual(layer, q22, q22, q22, jnp.float64)]
  for g, w, d1, d2 in zip(got, want, diag1, diag2):
    g = np.asarray(g, np.float64)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(w))
    err = np.abs(g - w) / np.maximum(np.sqrt(np.abs(d1 * d2)), 1e-30)
    assert err.max() < 1e-3 and np.median(err) < 1e-6, (err.max(), np.median(err))
