"""ConvTranspose: values against neural-tangents are in test_nt_reference.py; here the
finite layer against lax.conv_transpose, the views, a finite-width Monte Carlo of a
CIRCULAR network ending in Flatten (a case the fixture does not cover), and bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import flax_module, optim, stax
from kernels.empirical import empirical_ntk_fn
from kernels.stax.conv_transpose import circular_fold


def test_finite_layer_is_lax_conv_transpose_and_shapes():
  layer = stax.ConvTranspose(3, (3, 2), (2, 1), "SAME", W_std=1.5, b_std=0.2)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 5, 2))
  out_shape, (W, b) = layer.init_fn(jax.random.PRNGKey(1), x.shape)
  y = layer.apply_fn((W, b), x)
  ref = 1.5 / np.sqrt(2 * 6) * jax.lax.conv_transpose(
      x, W, (2, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")) + 0.2 * b
  np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)
  assert y.shape == out_shape == (2, 8, 5, 3)
  assert stax.ConvTranspose(3, (3, 2), (2, 3), "VALID").init_fn(
      jax.random.PRNGKey(0), x.shape)[0] == (2, 9, 15, 3)
  assert stax.ConvTranspose(3, (3, 2), (2, 3), "CIRCULAR").init_fn(
      jax.random.PRNGKey(0), x.shape)[0] == (2, 8, 15, 3)


def test_circular_fold_adds_entries_a_period_apart():
  x = jnp.arange(7.0)
  np.testing.assert_allclose(circular_fold(x, 0, 4), [1 + 5, 2 + 6, 3, 4 + 0])


def test_views_agree():
  net = stax.serial(stax.ConvTranspose(4, (2,), (2,), "CIRCULAR", 1.3, 0.1), stax.Relu(),
                    stax.ConvTranspose(3, (3,), padding="SAME", W_std=1.2), stax.Flatten(),
                    stax.Dense(2))
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 2))
  _, params = net.init_fn(jax.random.PRNGKey(1), x.shape)
  y = net.apply_fn(params, x)
  module = flax_module.to_flax(net)
  np.testing.assert_allclose(module.apply(flax_module.to_flax_params(net, params), x), y,
                             rtol=1e-6, atol=1e-6)
  lrs = optim.learning_rates(net, params)
  a = empirical_ntk_fn(net.apply_fn, implementation="jacobian", learning_rates=lrs)(x, None, params)
  c = empirical_ntk_fn(net.apply_fn, implementation="ntvp", learning_rates=lrs)(x, None, params)
  np.testing.assert_allclose(a, c, rtol=2e-4, atol=1e-5)


def test_bad_inputs():
  with pytest.raises(ValueError, match="filter_shape"):
    stax.ConvTranspose(2, (2, 2)).kernel_fn(jnp.ones((2, 4, 3)))
  with pytest.raises(ValueError, match="padding"):
    stax.ConvTranspose(2, (2,), padding="FULL")
  with pytest.raises(ValueError, match="strides"):
    stax.ConvTranspose(2, (2,), (1, 2))
  with pytest.raises(ValueError, match="spatial axes"):
    stax.serial(stax.Flatten(), stax.ConvTranspose(2, (2,))).kernel_fn(jnp.ones((2, 4, 3)))


@pytest.mark.slow
def test_monte_carlo_circular_then_flatten():
  """CIRCULAR folds positions together, so even a network ending in Flatten needs the full
  covariance: the kernel equals the mean of 20 finite networks of 128 channels to 4%."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 2), jnp.float64)
    w = 128
    net = stax.serial(stax.ConvTranspose(w, (4,), (2,), "CIRCULAR", 1.3, 0.1), stax.Relu(),
                      stax.ConvTranspose(w, (3,), (1,), "CIRCULAR", 1.2, 0.1), stax.Flatten())
    k = net.kernel_fn(x, None, "nngp")

    def one(key):
      _, p = net.init_fn(key, x.shape)
      y = net.apply_fn(p, x)
      return y @ y.T / y.shape[-1]
    mc = jax.lax.map(one, jax.random.split(jax.random.PRNGKey(1), 20), batch_size=10).mean(0)
    assert float(jnp.max(jnp.abs(mc - k)) / jnp.max(jnp.abs(k))) < 0.04
