"""FanInConcat along spatial axes (neural-tangents semantics): values against
neural-tangents are in test_nt_reference.py; here the structure of the kernel, the
finite network and bad inputs."""
import jax
import numpy as np
import pytest

from kernels import stax


def _branches(axis):
  return stax.serial(
      stax.Conv(4, (2,), padding="SAME", W_std=1.3, b_std=0.1), stax.FanOut(2),
      stax.parallel(stax.Conv(4, (3,), padding="VALID", W_std=1.2, b_std=0.1),
                    stax.serial(stax.Relu(), stax.Conv(4, (2,), padding="SAME", W_std=1.4))),
      stax.FanInConcat(axis))


def test_spatial_concat_is_block_diagonal_in_positions():
  x1 = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 2))
  x2 = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 2))
  k = _branches(1).kernel_fn(x1, x2, ("nngp", "ntk"))
  assert k.nngp.shape == (3, 2, 8, 8)
  a = stax.serial(stax.Conv(4, (2,), padding="SAME", W_std=1.3, b_std=0.1),
                  stax.Conv(4, (3,), padding="VALID", W_std=1.2, b_std=0.1))
  b = stax.serial(stax.Conv(4, (2,), padding="SAME", W_std=1.3, b_std=0.1), stax.Relu(),
                  stax.Conv(4, (2,), padding="SAME", W_std=1.4))
  ka, kb = a.kernel_fn(x1, x2, ("nngp", "ntk")), b.kernel_fn(x1, x2, ("nngp", "ntk"))
  for got, ra, rb in ((k.nngp, ka.nngp, kb.nngp), (k.ntk, ka.ntk, kb.ntk)):
    np.testing.assert_allclose(got[:, :, :3, :3], ra, rtol=1e-6)
    np.testing.assert_allclose(got[:, :, 3:, 3:], rb, rtol=1e-6)
    assert np.all(np.asarray(got[:, :, :3, 3:]) == 0) and np.all(np.asarray(got[:, :, 3:, :3]) == 0)
  # Only equal positions: the concatenated diagonals.
  kd = _branches(-2).kernel_fn(x1, x2, "nngp", diagonal_spatial=True)
  np.testing.assert_allclose(kd, np.einsum("abii->abi", np.asarray(k.nngp)), rtol=1e-6)


def test_spatial_concat_finite_network():
  net = _branches(1)
  out_shape, params = net.init_fn(jax.random.PRNGKey(0), (3, 5, 2))
  y = net.apply_fn(params, jax.random.normal(jax.random.PRNGKey(1), (3, 5, 2)))
  assert out_shape == y.shape == (3, 8, 4)


def test_bad_concat_axes():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 2))
  with pytest.raises(ValueError, match="axis=3 is out of range"):
    _branches(3).kernel_fn(x)
  with pytest.raises(ValueError, match="axis=0 is the batch axis"):
    _branches(0).init_fn(jax.random.PRNGKey(0), x.shape)
  with pytest.raises(ValueError, match="axis=1"):  # channels differ: 4 and 3
    stax.serial(stax.FanOut(2), stax.parallel(stax.Conv(4, (1,)), stax.Conv(3, (1,))),
                stax.FanInConcat(1)).kernel_fn(x)
  with pytest.raises(ValueError, match="mean-zero Gaussian"):
    stax.serial(stax.Conv(4, (1,)), stax.FanOut(2), stax.parallel(stax.Relu(), stax.Relu()),
                stax.FanInConcat(1)).kernel_fn(x)
  with pytest.raises(ValueError, match="independent branches"):
    stax.serial(stax.Conv(4, (1,)), stax.FanOut(2), stax.FanInConcat(1)).kernel_fn(x)
  with pytest.raises(TypeError, match="axis must be an int"):
    stax.FanInConcat(1.0)
