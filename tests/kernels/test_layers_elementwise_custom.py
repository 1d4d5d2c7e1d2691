"""`stax.Elementwise(fn, nngp_fn, d_nngp_fn)`: a user's activation with a user's dual.

neural-tangents' semantics: ``nngp_fn(cov12, var1, var2) = E[fn(u) fn(v)]`` on scalars,
and the NTK's factor ``E[fn'(u) fn'(v)]`` from ``d_nngp_fn`` or, when it is None, the
derivative of ``nngp_fn`` in ``cov12`` (Price's theorem). Checked against the built-in
closed forms of the same activations (Erf, Sin; themselves equal to neural-tangents'
values, tests/kernels/test_nt_reference.py) and against Monte Carlo networks.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import monte_carlo
from kernels import stax

X = np.random.default_rng(0).normal(size=(5, 4))
IMAGES = np.random.default_rng(1).normal(size=(3, 4, 4, 2))


def erf_nngp(cov12, var1, var2):
  """E[erf(u) erf(v)] (Williams 1997), as in neural-tangents' docstring."""
  prod = (1 + 2 * var1) * (1 + 2 * var2)
  return jnp.arcsin(2 * cov12 / jnp.sqrt(prod)) * 2 / np.pi


def sin_nngp(cov12, var1, var2):
  """E[sin(u) sin(v)] = (e^{-(var1 + var2)/2 + cov12} - e^{-(var1 + var2)/2 - cov12}) / 2."""
  s = -0.5 * (var1 + var2)
  return 0.5 * (jnp.exp(s + cov12) - jnp.exp(s - cov12))


def sin_d_nngp(cov12, var1, var2):
  s = -0.5 * (var1 + var2)
  return 0.5 * (jnp.exp(s + cov12) + jnp.exp(s - cov12))


def _mlp(act):
  return stax.serial(stax.Dense(8, 1.3, 0.1), act, stax.Dense(8, 1.2, 0.2), act,
                     stax.Dense(1, 1.1, 0.1))


def _cnn(act):
  return stax.serial(stax.Conv(8, (2, 2), W_std=1.3, b_std=0.1, padding="SAME"), act,
                     stax.Conv(8, (2, 2), W_std=1.2, padding="SAME"), act,
                     stax.GlobalAvgPool(), stax.Dense(1, 1.1, 0.1))


CASES = {
    "erf_autodiff": (stax.Elementwise(jax.scipy.special.erf, erf_nngp), stax.Erf()),
    "sin_given_derivative": (stax.Elementwise(jnp.sin, sin_nngp, sin_d_nngp), stax.Sin()),
    "sin_autodiff": (stax.Elementwise(jnp.sin, sin_nngp), stax.Sin()),
}


@pytest.mark.parametrize("net", ["mlp", "cnn"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_kernels_equal_the_built_in_closed_form(case, net):
  custom, built_in = CASES[case]
  make, x = (_mlp, X) if net == "mlp" else (_cnn, IMAGES)
  with jax.enable_x64(True):
    for x2 in (None, x[:2] * 0.7):
      a = make(custom).kernel_fn(x, x2, ("nngp", "ntk"))
      b = make(built_in).kernel_fn(x, x2, ("nngp", "ntk"))
      np.testing.assert_allclose(np.asarray(a.nngp), np.asarray(b.nngp), rtol=1e-12, atol=1e-14)
      np.testing.assert_allclose(np.asarray(a.ntk), np.asarray(b.ntk), rtol=1e-12, atol=1e-14)


def test_finite_network_applies_fn_and_approaches_the_kernel():
  act = stax.Elementwise(jnp.sin, sin_nngp)
  dense = stax.Dense(8, 1.3, 0.1)
  _, params = stax.serial(dense, act).init_fn(jax.random.PRNGKey(0), X.shape)
  np.testing.assert_allclose(np.asarray(stax.serial(dense, act).apply_fn(params, X)),
                             np.sin(np.asarray(dense.apply_fn(params[0], X))), rtol=1e-6)
  # 512 outputs: the Monte Carlo kernel averages over them (the kernel does not depend
  # on the output count), so 16 networks suffice.
  wide = stax.serial(stax.Dense(1024, 1.3, 0.1), act, stax.Dense(1024, 1.2, 0.2), act,
                     stax.Dense(512, 1.1, 0.1))
  mc = monte_carlo.monte_carlo_kernel_fn(wide.init_fn, wide.apply_fn, jax.random.PRNGKey(1),
                                         n_samples=16)
  k_mc = np.asarray(mc(jnp.asarray(X, jnp.float32), None, "nngp"))
  k = np.asarray(wide.kernel_fn(X, None, "nngp"))
  rel = np.max(np.abs(k_mc - k)) / np.max(np.abs(k))
  print(f"Monte Carlo NNGP (16 networks of width 1024, 512 outputs) against the kernel: {rel:.3f}")
  assert rel < 0.05


def test_missing_functions_and_bad_arguments():
  with pytest.raises(ValueError, match="fn .* or nngp_fn"):
    stax.Elementwise()
  with pytest.raises(TypeError, match="nngp_fn must be callable"):
    stax.Elementwise(jnp.sin, nngp_fn=3.0)
  kernels_only = _mlp(stax.Elementwise(nngp_fn=sin_nngp))
  assert np.all(np.isfinite(np.asarray(kernels_only.kernel_fn(X, None, "ntk"))))
  _, params = kernels_only.init_fn(jax.random.PRNGKey(0), X.shape)
  with pytest.raises(NotImplementedError, match="no fn"):
    kernels_only.apply_fn(params, X)
  finite_only = _mlp(stax.Elementwise(jnp.sin))
  with pytest.raises(NotImplementedError, match="no nngp_fn"):
    finite_only.kernel_fn(X, None, "nngp")
  assert math.isfinite(float(np.asarray(finite_only.apply_fn(params, X))[0, 0]))
