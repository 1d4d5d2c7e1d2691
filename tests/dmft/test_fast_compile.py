"""dmft.fast_compile: the solver's programs compiled with XLA's classic CPU emitters give
the values of the default compilation, and an XLA without the option falls back to it.

Measured (benchmarks/dmft_speed.py settings): float32 outputs of the two-layer solve
(relu 'march', erf 'iterate') and of the deep initial kernels bitwise equal, float64
within 4 ulp with the same iteration counts.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dmft
from dmft import data
from dmft import fast_compile


def _solve(method):
  x, y, xt, yt = data.synthetic(n_train=6, n_test=2, dim=4, seed=3)
  with jax.enable_x64(True):
    return dmft.solve_two_layer(x, y, activation="erf", lr=0.5, steps=8, n_samples=256,
                                X_test=xt, y_test=yt, method=method, damping=0.8)


@pytest.mark.parametrize("method", ["march", "iterate"])
def test_same_values_as_the_default_compilation(monkeypatch, method):
  fast = _solve(method)
  monkeypatch.setattr(fast_compile, "_supported", [False])  # the default compilation
  plain = _solve(method)
  assert fast.n_iterations == plain.n_iterations
  for name in ("loss", "test_loss", "ntk", "phi", "g", "mc_error"):
    np.testing.assert_allclose(getattr(fast, name), getattr(plain, name), rtol=1e-13,
                               atol=1e-15, err_msg=name)


def test_an_xla_without_the_option_compiles_with_its_defaults(monkeypatch):
  monkeypatch.setattr(fast_compile, "OPTIONS", {"xla_no_such_option_in_any_xla": True})
  monkeypatch.setattr(fast_compile, "_supported", [True])
  fn = fast_compile.jit(lambda x, *, k: jnp.sin(x) * k, static_argnames=("k",))
  np.testing.assert_allclose(fn(jnp.ones(3), k=2), 2 * np.sin(np.ones(3)), rtol=1e-6)
  assert fast_compile._supported == [False]
  np.testing.assert_allclose(fn(jnp.zeros(3), k=3), np.zeros(3))


def test_other_errors_are_raised(monkeypatch):
  monkeypatch.setattr(fast_compile, "_supported", [True])

  def bad(x):
    raise jax.errors.JaxRuntimeError("something else")

  with pytest.raises(jax.errors.JaxRuntimeError, match="something else"):
    fast_compile.jit(bad)(jnp.ones(2))
