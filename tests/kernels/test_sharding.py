"""Blocked, device-sharded kernels equal the direct computation."""
import jax
import numpy as np
import pytest

from kernels import sharding, stax


def test_two_host_devices_are_available():
  assert len(jax.devices()) >= 2, "tests/conftest.py asks XLA for two host devices"


@pytest.mark.parametrize("batch_size", [0, 4, 10])
def test_batched_equals_direct(batch_size):
  net = stax.serial(stax.Dense(16, 1.4, 0.1), stax.Erf(), stax.Dense(16, 1.3, 0.1), stax.Relu(),
                    stax.Dense(1))
  rng = np.random.RandomState(0)
  x1 = rng.randn(13, 5).astype(np.float32)
  x2 = rng.randn(9, 5).astype(np.float32)
  fn = sharding.batch(net.kernel_fn, batch_size)
  got = fn(x1, x2, ("nngp", "ntk"))
  ref = net.kernel_fn(x1, x2, ("nngp", "ntk"))
  np.testing.assert_allclose(got.nngp, ref.nngp, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got.ntk, ref.ntk, rtol=1e-5, atol=1e-6)
  assert fn(x1, None, "nngp").shape == (13, 13)


def test_batch_arguments():
  net = stax.serial(stax.Dense(4), stax.Relu(), stax.Dense(1))
  x = np.random.RandomState(1).randn(7, 3).astype(np.float32)
  # A batch size that is no multiple of the device count is rounded up, the inputs padded.
  np.testing.assert_allclose(sharding.batch(net.kernel_fn, 3)(x, None, "ntk"),
                             net.kernel_fn(x, None, "ntk"), rtol=1e-6, atol=1e-6)
  with pytest.raises(TypeError, match="kernel_fn"):
    sharding.batch(42, 4)
