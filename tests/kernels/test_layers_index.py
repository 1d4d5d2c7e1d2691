"""Index / Slice: values against neural-tangents are in test_nt_reference.py; here the
finite layer, the kernel against indexing the kernel of the unindexed network, and
bad inputs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import stax


def test_slice_helper_and_finite_layer():
  assert stax.Slice[1:10, :, ::-1] == (slice(1, 10), slice(None), slice(None, None, -1))
  layer = stax.Index(stax.Slice[::2, 1:4, ..., 0:1])
  x = jnp.arange(4 * 5 * 3 * 2.0).reshape(4, 5, 3, 2)
  out_shape, _ = layer.init_fn(jax.random.PRNGKey(0), x.shape)
  np.testing.assert_array_equal(layer.apply_fn((), x), x[::2, 1:4, ..., 0:1])
  assert out_shape == (2, 3, 3, 1)


def test_kernel_indexes_positions_of_both_inputs():
  x1 = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 4, 2))
  x2 = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 4, 2))
  net = stax.serial(stax.Conv(4, (2, 2), padding="SAME", W_std=1.3, b_std=0.1), stax.Relu())
  k = net.kernel_fn(x1, x2, ("nngp", "ntk"))
  ki = stax.serial(net, stax.Index(stax.Slice[1:, 3, ::-2])).kernel_fn(x1, x2, ("nngp", "ntk"))
  np.testing.assert_allclose(ki.nngp, k.nngp[1:, 1:, 3, 3, ::-2, ::-2], rtol=1e-6)
  np.testing.assert_allclose(ki.ntk, k.ntk[1:, 1:, 3, 3, ::-2, ::-2], rtol=1e-6)


def test_bad_indices():
  x = jnp.ones((2, 5, 3))
  with pytest.raises(ValueError, match="channel axis"):
    stax.Index(stax.Slice[:, :, 1:]).kernel_fn(x)
  with pytest.raises(ValueError, match="batch axis"):
    stax.Index(stax.Slice[0]).kernel_fn(x)
  with pytest.raises(ValueError, match="4 entries"):
    stax.Index(stax.Slice[:, :, :, :]).kernel_fn(x)
  with pytest.raises(ValueError, match="out of range"):
    stax.Index(stax.Slice[:, 7]).init_fn(jax.random.PRNGKey(0), x.shape)
  with pytest.raises(ValueError, match="selects nothing"):
    stax.Index(stax.Slice[:, 6:]).kernel_fn(x)
  with pytest.raises(ValueError, match="integers, slices"):
    stax.Index(stax.Slice[:, None])
