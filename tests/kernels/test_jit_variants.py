"""Jitted entry points give the same values with jit and with jit made a no-op (chex.fake_jit),
so a shape bug hidden by tracing shows up."""
import chex
import jax
import numpy as np
import pytest

from kernels import stax
from kernels.parameterization import mup


@pytest.fixture(params=["jit", "no_jit"])
def jit_mode(request):
  if request.param == "no_jit":
    with chex.fake_jit():
      yield request.param
  else:
    yield request.param


@pytest.mark.parametrize("parameterization", ["ntk", "mup"])
def test_kernel_fn_and_apply_fn(jit_mode, parameterization):
  net = stax.serial(stax.Dense(32, W_std=1.3, b_std=0.1, parameterization=parameterization),
                    stax.Erf(), stax.Dense(1, W_std=1.1, parameterization=parameterization))
  rng = np.random.default_rng(0)
  x1 = rng.standard_normal((5, 3)).astype(np.float32)
  x2 = rng.standard_normal((4, 3)).astype(np.float32)
  k = net.kernel_fn(x1, x2, ("nngp", "ntk"))
  chex.assert_shape([k.nngp, k.ntk], (5, 4))
  chex.assert_tree_all_finite(k)
  # Reference: the same kernel from an independent evaluation on the stacked batch.
  both = net.kernel_fn(np.concatenate([x1, x2]), None, ("nngp", "ntk"))
  np.testing.assert_allclose(k.nngp, both.nngp[:5, 5:], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(k.ntk, both.ntk[:5, 5:], rtol=1e-5, atol=1e-6)
  _, params = net.init_fn(jax.random.PRNGKey(0), x1.shape)
  out = jax.jit(net.apply_fn)(params, x1)
  chex.assert_shape(out, (5, 1))
  np.testing.assert_allclose(out, net.apply_fn(params, x1), rtol=1e-6, atol=1e-6)
