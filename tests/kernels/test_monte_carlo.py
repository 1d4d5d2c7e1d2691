"""Monte Carlo kernels of finite networks against the analytic kernels.

For one hidden layer the empirical NNGP and NTK are unbiased at any width, so the
Monte Carlo mean must match within a few standard errors estimated from the
samples themselves; deeper networks carry an O(1/width) bias as well.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernels import optim, stax
from kernels import parameterization as pz
from kernels.empirical import empirical_ntk_fn
from kernels.monte_carlo import monte_carlo_kernel_fn


@pytest.mark.parametrize("p", ["ntk", "standard", pz.mup(0.5)])
@pytest.mark.parametrize("act", [stax.Relu(), stax.Erf(), stax.Gelu()])
def test_one_hidden_layer_unbiased_within_standard_error(p, act):
  rng = np.random.RandomState(0)
  x = rng.randn(5, 3).astype(np.float32)
  net = stax.serial(stax.Dense(128, 1.3, 0.2, parameterization=p), act, stax.Dense(4, 1.1, 0.1, parameterization=p))
  init_fn, apply_fn, kernel_fn = net
  k = kernel_fn(x, None, ("nngp", "ntk"))
  n = 96
  keys = jax.random.split(jax.random.PRNGKey(1), n)

  def sample(key):
    _, params = init_fn(key, x.shape)
    f = apply_fn(params, x)
    lrs = optim.learning_rates(net, params)
    ntk = empirical_ntk_fn(apply_fn, implementation="structured", learning_rates=lrs)(
        x, None, params)
    return f @ f.T / f.shape[1], ntk

  nngps, ntks = jax.lax.map(sample, keys)
  for samples, exact in ((nngps, k.nngp), (ntks, k.ntk)):
    mean = np.mean(samples, 0)
    se = np.std(samples, 0, ddof=1) / np.sqrt(n)
    z = np.abs(mean - np.asarray(exact)) / (se + 1e-6 * np.abs(exact).max())
    # 15 distinct entries; 5 standard errors bounds the max |z| with ample margin.
    assert z.max() < 5.0, (z.max(), mean, exact)


def test_monte_carlo_kernel_fn_converges_like_one_over_sqrt_samples():
  rng = np.random.RandomState(0)
  x = rng.randn(6, 3).astype(np.float32)
  net = stax.serial(stax.Dense(64, 1.4, 0.1), stax.Relu(), stax.Dense(1, 1.0, 0.1))
  exact = net.kernel_fn(x, None, ("nngp", "ntk"))
  errs = []
  for n in (16, 256):
    mc = monte_carlo_kernel_fn(net.init_fn, net.apply_fn, jax.random.PRNGKey(n), n, 16)(
        x, None, ("nngp", "ntk"))
    errs.append([float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b)) for a, b in zip(mc, exact)])
  errs = np.asarray(errs)
  print("relative errors at 16 and 256 samples (nngp, ntk):", errs.tolist())
  # 16x more samples: 4x smaller error expected; accept at least 2x.
  assert np.all(errs[1] < errs[0] / 2)
  assert errs[1, 0] < 0.15 and errs[1, 1] < 0.05


@pytest.mark.slow
def test_deep_network_error_shrinks_with_width():
  """Depth 3: the sample-mean NTK's error falls between width^-1/2 (fluctuations) and width^-1 (bias)."""
  rng = np.random.RandomState(0)
  x = rng.randn(8, 4).astype(np.float32)
  errs = []
  widths = (32, 64, 128, 256, 512)
  for w in widths:
    net = stax.mlp([w] * 3, stax.Relu(), 1, W_std=2 ** 0.5, b_std=0.1)
    exact = net.kernel_fn(x, None, "ntk")
    mc = monte_carlo_kernel_fn(net.init_fn, net.apply_fn, jax.random.PRNGKey(w), 32, 8,
                               implementation="structured")(x, None, "ntk")
    errs.append(float(jnp.linalg.norm(mc - exact) / jnp.linalg.norm(exact)))
  slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
  print("MC NTK errors", errs, "slope", slope)
  assert -1.25 < slope < -0.35
