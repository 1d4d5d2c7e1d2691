"""ImageResize: values against neural-tangents are in test_nt_reference.py; here the
finite layer, bad inputs, and a finite-width Monte Carlo after a Conv, where
neural-tangents 0.6.5 resizes the wrong axes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import stax


def test_finite_layer_is_jax_image_resize():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 4, 3))
  layer = stax.ImageResize((-1, 8, -1, -1), "bilinear", antialias=False)
  out_shape, _ = layer.init_fn(jax.random.PRNGKey(0), x.shape)
  y = layer.apply_fn((), x)
  np.testing.assert_allclose(y, jax.image.resize(x, (2, 8, 4, 3), "bilinear", antialias=False),
                             rtol=1e-6)
  assert y.shape == out_shape == (2, 8, 4, 3)


def test_bad_inputs():
  x = jnp.ones((2, 5, 3))
  with pytest.raises(ValueError, match="has 4 axes"):
    stax.ImageResize((-1, 4, 4, -1), "linear").kernel_fn(x)
  with pytest.raises(ValueError, match="batch or channel"):
    stax.ImageResize((-1, 4, 6), "linear").kernel_fn(x)
  with pytest.raises(ValueError, match="has no kernel"):
    stax.ImageResize((-1, 4, -1), "cubic").kernel_fn(x)
  with pytest.raises(ValueError, match="positive or -1"):
    stax.ImageResize((-1, 0, -1), "linear")
  with pytest.raises(ValueError):
    stax.ImageResize((-1, 4, -1), "no-such-method")


@pytest.mark.slow
def test_monte_carlo_after_conv():
  """Conv, ReLU, a downsampling antialiased resize of one axis, Conv, ReLU, Flatten: the
  kernel equals the mean of 20 finite networks of 128 channels to 5%."""
  with jax.enable_x64(True):
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 6, 5, 2), jnp.float64)
    w = 128
    net = stax.serial(stax.Conv(w, (3, 3), padding="SAME", W_std=1.3, b_std=0.1), stax.Relu(),
                      stax.ImageResize((-1, 4, -1, -1), "bilinear"),
                      stax.Conv(w, (2, 2), padding="VALID", W_std=1.2, b_std=0.1), stax.Relu(),
                      stax.Flatten())
    k = net.kernel_fn(x, None, "nngp")

    def one(key):
      _, p = net.init_fn(key, x.shape)
      y = net.apply_fn(p, x)
      return y @ y.T / y.shape[-1]
    mc = jax.lax.map(one, jax.random.split(jax.random.PRNGKey(1), 20), batch_size=10).mean(0)
    assert float(jnp.max(jnp.abs(mc - k)) / jnp.max(jnp.abs(k))) < 0.05
