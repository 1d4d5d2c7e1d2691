"""No NaN where the math is finite: identical and zero inputs, correlation 1, depth 50."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import stax


def deep(act, depth, w_std, b_std=0.0):
  layers = []
  for _ in range(depth):
    layers += [stax.Dense(64, w_std, b_std), act]
  return stax.serial(*layers, stax.Dense(1, 1.0, b_std))


@pytest.mark.parametrize("act,w_std", [(stax.Relu(), 2 ** 0.5), (stax.Erf(), 1.5),
                                       (stax.Gelu(), 1.6), (stax.Abs(), 1.0)])
def test_depth_50_float32_is_finite_and_matches_float64(act, w_std):
  rng = np.random.RandomState(0)
  x = rng.randn(6, 5)
  x[1] = x[0]  # identical inputs
  x[2] = 0.0  # a zero input
  x[3] = -x[0]  # anti-correlated
  net = deep(act, 50, w_std, 0.05)
  k32 = net.kernel_fn(x.astype(np.float32), None, ("nngp", "ntk"))
  assert all(np.all(np.isfinite(np.asarray(m))) for m in k32)
  with jax.enable_x64(True):
    k64 = net.kernel_fn(x.astype(np.float64), None, ("nngp", "ntk"))
  for a, b in zip(k32, k64):
    b = np.asarray(b)
    # measured: at most 2.2e-5 relative (Gelu NTK), the identical pair included
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3 * np.abs(b).max())
  # identical inputs give identical rows
  np.testing.assert_allclose(k32.ntk[0], k32.ntk[1], rtol=1e-3)
  np.testing.assert_allclose(k64.ntk[0], k64.ntk[1], rtol=1e-9)


def test_all_zero_inputs_and_no_bias():
  x = np.zeros((3, 4), np.float32)
  k = deep(stax.Relu(), 3, 1.4).kernel_fn(x, None, ("nngp", "ntk"))
  np.testing.assert_array_equal(np.asarray(k.nngp), 0.0)
  assert np.all(np.isfinite(np.asarray(k.ntk)))


def test_correlation_exactly_one_cross_kernel():
  rng = np.random.RandomState(1)
  x = rng.randn(4, 3).astype(np.float32)
  k = deep(stax.Relu(), 10, 2 ** 0.5, 0.1).kernel_fn(x, 3.0 * x, ("nngp", "ntk"))
  assert all(np.all(np.isfinite(np.asarray(m))) for m in k)
  assert np.all(np.isfinite(np.asarray(jax.grad(
      lambda z: deep(stax.Relu(), 3, 1.4).kernel_fn(z, None, "ntk").sum())(x))))


def test_float64_identical_points_exact_angle():
  """With x64, a point's self-correlation is exactly 1 (theta = 0)."""
  with jax.enable_x64(True):
    x = np.random.RandomState(2).randn(3, 5)
    k = deep(stax.Relu(), 2, 2 ** 0.5).kernel_fn(x, x, "nngp")
    kd = deep(stax.Relu(), 2, 2 ** 0.5).kernel_fn(x, None, "nngp")
    np.testing.assert_allclose(np.diag(k), np.diag(kd), rtol=1e-12)
