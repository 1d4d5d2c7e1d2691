"""Finite views of one description: apply_fn, the Flax module and the empirical NTKs agree."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import flax_module, optim, stax
from kernels import parameterization as pz
from kernels.empirical import (conditional_nngp_fn, empirical_kernel_fn, empirical_nngp_fn,
                               empirical_ntk_fn)

NETS = {
    "ntk": stax.serial(stax.Dense(32, 1.4, 0.1), stax.Relu(), stax.Dense(16, 1.2, 0.2),
                       stax.Gelu(), stax.Dense(3, 1.0, 0.1)),
    "standard": stax.mlp([24, 40], stax.Erf(), 2, parameterization="standard", W_std=1.3,
                         b_std=0.1),
    "mup": stax.mlp([32, 32], stax.Tanh(), 3, parameterization=pz.mup(0.3), W_std=1.1,
                    b_std=0.2),
    "residual": stax.serial(stax.Dense(16, 1.0, parameterization=pz.depth_mup()), stax.Residual(
        stax.serial(stax.Relu(), stax.Dense(16, 1.4, 0.1, parameterization=pz.depth_mup())),
        pz.depth_mup()), stax.Relu(), stax.Dense(2, parameterization=pz.depth_mup())),
}


@pytest.fixture
def xs():
  rng = np.random.RandomState(0)
  return rng.randn(6, 5).astype(np.float32), rng.randn(4, 5).astype(np.float32)


@pytest.mark.parametrize("name", sorted(NETS))
def test_flax_module_equals_apply_fn(name, xs):
  net = NETS[name]
  x, _ = xs
  _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
  module = flax_module.to_flax(net)
  variables = flax_module.to_flax_params(net, params)
  np.testing.assert_array_equal(module.apply(variables, x), net.apply_fn(params, x))
  # And the other way: Flax's own initialisation, read back as stax params.
  v2 = module.init(jax.random.PRNGKey(1), x)
  p2 = flax_module.from_flax_params(net, v2, x.shape)
  np.testing.assert_array_equal(module.apply(v2, x), net.apply_fn(p2, x))
  # Initial scales follow the parameterization in both.
  for (w1, _), (w2, _) in zip(jax.tree_util.tree_leaves(params, is_leaf=lambda t: isinstance(t, tuple) and len(t) == 2 and hasattr(t[0], "ndim")),
                              jax.tree_util.tree_leaves(p2, is_leaf=lambda t: isinstance(t, tuple) and len(t) == 2 and hasattr(t[0], "ndim"))):
    assert abs(float(jnp.std(w1)) / float(jnp.std(w2)) - 1) < 0.5


def test_flax_ensemble_vmaps_over_seeds(xs):
  net = NETS["mup"]
  x, _ = xs
  module = flax_module.to_flax(net)
  variables = jax.vmap(lambda k: module.init(k, x))(jax.random.split(jax.random.PRNGKey(0), 5))
  out = jax.vmap(lambda v: module.apply(v, x))(variables)
  assert out.shape == (5, 6, 3)
  assert float(jnp.std(out[:, 0, 0])) > 0


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("axes", [((-1,), ()), ((), ()), ((), (-1,))])
def test_empirical_ntk_implementations_agree(name, axes, xs):
  net = NETS[name]
  x1, x2 = xs
  _, params = net.init_fn(jax.random.PRNGKey(0), x1.shape)
  lrs = optim.learning_rates(net, params)
  trace_axes, diagonal_axes = axes
  ref = empirical_ntk_fn(net.apply_fn, trace_axes, diagonal_axes, implementation="jacobian",
                         learning_rates=lrs)(x1, x2, params)
  for impl in ("ntvp", "structured"):
    got = empirical_ntk_fn(net.apply_fn, trace_axes, diagonal_axes, implementation=impl,
                           learning_rates=lrs)(x1, x2, params)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5 * float(jnp.abs(ref).max()))
  vm = empirical_ntk_fn(net.apply_fn, trace_axes, diagonal_axes, vmap_axes=0,
                        learning_rates=lrs)(x1, x2, params)
  np.testing.assert_allclose(vm, ref, rtol=2e-5, atol=2e-5 * float(jnp.abs(ref).max()))


def test_empirical_ntk_of_flax_apply_equals_stax(xs):
  net = NETS["ntk"]
  x1, x2 = xs
  _, params = net.init_fn(jax.random.PRNGKey(0), x1.shape)
  module = flax_module.to_flax(net)
  variables = flax_module.to_flax_params(net, params)
  ref = empirical_ntk_fn(net.apply_fn, implementation="structured")(x1, x2, params)
  got = empirical_ntk_fn(module.apply)(x1, x2, variables)
  np.testing.assert_allclose(got, ref, rtol=2e-5, atol=1e-6)
  k = empirical_kernel_fn(module.apply)(x1, x2, ("nngp", "ntk"), variables)
  np.testing.assert_allclose(k.ntk, ref, rtol=2e-5, atol=1e-6)
  f1, f2 = module.apply(variables, x1), module.apply(variables, x2)
  np.testing.assert_allclose(k.nngp, f1 @ f2.T / 3, rtol=1e-5, atol=1e-6)


def test_full_output_block_layout(xs):
  """trace_axes=() gives (n1, n2, k, k); its mean diagonal equals the traced NTK."""
  net = NETS["ntk"]
  x1, x2 = xs
  _, params = net.init_fn(jax.random.PRNGKey(0), x1.shape)
  full = empirical_ntk_fn(net.apply_fn, trace_axes=())(x1, x2, params)
  traced = empirical_ntk_fn(net.apply_fn)(x1, x2, params)
  diag = empirical_ntk_fn(net.apply_fn, trace_axes=(), diagonal_axes=(-1,))(x1, x2, params)
  assert full.shape == (6, 4, 3, 3) and diag.shape == (6, 4, 3)
  np.testing.assert_allclose(jnp.trace(full, axis1=2, axis2=3) / 3, traced, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(jnp.diagonal(full, axis1=2, axis2=3), diag, rtol=1e-5, atol=1e-6)


def test_conditional_nngp_is_readout_average(xs):
  """Averaging f f^T over many readout draws converges to the conditional NNGP."""
  net = stax.serial(stax.Dense(32, 1.4, 0.1), stax.Relu(), stax.Dense(1, 1.2, 0.3))
  x1, _ = xs
  _, params = net.init_fn(jax.random.PRNGKey(0), x1.shape)
  cond = conditional_nngp_fn(net.apply_fn)(x1, None, params)
  keys = jax.random.split(jax.random.PRNGKey(1), 4000)

  def resample(k):
    k1, k2 = jax.random.split(k)
    W = jax.random.normal(k1, (32, 1))
    b = jax.random.normal(k2, (1,))
    p = (params[0], params[1], (W, b))
    f = net.apply_fn(p, x1)
    return f @ f.T

  mean = jnp.mean(jax.lax.map(resample, keys), 0)
  np.testing.assert_allclose(mean, cond, rtol=0.1, atol=0.1 * float(jnp.abs(cond).max()))
