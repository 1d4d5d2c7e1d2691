"""Training under a parameterization: optax learning rates, muP coordinate check, lazy GD."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from kernels import optim, predict, stax
from kernels import parameterization as pz


def test_learning_rates_follow_presets():
  net = stax.mlp([64, 64], stax.Relu(), 1, parameterization=pz.mup(0.5), b_std=0.1)
  _, params = net.init_fn(jax.random.PRNGKey(0), (2, 10))
  sgd = optim.learning_rates(net, params, "sgd")
  # Every weight and hidden bias: lr * gamma0^2 * N; the readout bias: lr * gamma0^2.
  assert sgd[0] == (0.25 * 64, 0.25 * 64) and sgd[2] == (0.25 * 64, 0.25 * 64)
  assert sgd[4] == (0.25 * 64, 0.25)
  adam = optim.learning_rates(net, params, "adam")
  # muP Adam: input and readout O(1), hidden 1/sqrt(N) in this (mean-field) form; times gamma0.
  assert adam[0][0] == 0.5 and adam[2][0] == pytest.approx(0.5 / 8) and adam[4][0] == 0.5
  ntk_net = stax.mlp([64], stax.Relu(), 1, b_std=0.1)
  _, p2 = ntk_net.init_fn(jax.random.PRNGKey(0), (2, 10))
  assert all(v == 1.0 for v in jax.tree_util.tree_leaves(optim.learning_rates(ntk_net, p2)))


def _hidden_update_size(parameterization, width, lr, seed):
  """RMS change of the last hidden features (the readout's inputs) after one SGD step."""
  rng = np.random.RandomState(0)
  x = jnp.asarray(rng.randn(8, 10), jnp.float32)
  y = jnp.asarray(rng.randn(8, 1), jnp.float32)
  net = stax.mlp([width, width], stax.Relu(), 1, parameterization=parameterization,
                 W_std=2 ** 0.5)
  _, params = net.init_fn(jax.random.PRNGKey(seed), x.shape)
  opt = optim.sgd(net, lr)
  loss = lambda p: 0.5 * jnp.mean((net.apply_fn(p, x) - y) ** 2)
  g = jax.grad(loss)(params)
  u, _ = opt.update(g, opt.init(params), params)
  new = optax.apply_updates(params, u)
  readout = (len(net.layers) - 1,)
  h0 = net.apply_fn.with_intermediates(params, x)[1][readout]
  h1 = net.apply_fn.with_intermediates(new, x)[1][readout]
  return float(jnp.sqrt(jnp.mean((h1 - h0) ** 2)))


def test_coordinate_check_mup_features_move_ntk_features_freeze():
  """muP: hidden features move by O(1) at every width; NTK: they freeze like 1/sqrt(N) (Yang & Hu 2021)."""
  widths = (128, 512, 2048)
  seeds = range(4)
  mup = [np.mean([_hidden_update_size(pz.mup(1.0), w, 0.5, s) for s in seeds]) for w in widths]
  ntk = [np.mean([_hidden_update_size("ntk", w, 0.5, s) for s in seeds]) for w in widths]
  s_mup = np.polyfit(np.log(widths), np.log(mup), 1)[0]
  s_ntk = np.polyfit(np.log(widths), np.log(ntk), 1)[0]
  print("feature update vs width: mup", mup, "slope", s_mup, "| ntk", ntk, "slope", s_ntk)
  assert abs(s_mup) < 0.15
  assert s_ntk < -0.35  # at least width^-1/2 (Yang & Hu 2021, Thm. 3.8); 1/width is also seen


def test_gradient_descent_mse_matches_closed_form():
  rng = np.random.RandomState(0)
  a = rng.randn(6, 6)
  k = jnp.asarray(a @ a.T / 6 + np.eye(6) * 0.1, jnp.float32)
  y = jnp.asarray(rng.randn(6, 2), jnp.float32)
  kt = jnp.asarray(rng.randn(3, 6), jnp.float32)
  lr, steps = 0.5, 40
  train, test = predict.gradient_descent_mse(k, y, lr)(
      fx_test_0=0., k_test_train=kt, steps=np.arange(steps + 1))
  assert train.shape == (41, 6, 2) and test.shape == (41, 3, 2)
  # f_t = (I - (I - lr K / N)^t) y on training points (N = y.size); test: Kt K^-1 f_t.
  m = np.eye(6) - lr / y.size * np.asarray(k, np.float64)
  ft = (np.eye(6) - np.linalg.matrix_power(m, steps)) @ np.asarray(y)
  np.testing.assert_allclose(train[-1], ft, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(test[-1], np.asarray(kt) @ np.linalg.solve(k, ft), rtol=1e-3,
                             atol=1e-4)
  loss = 0.5 * np.mean((np.asarray(train) - np.asarray(y)) ** 2, axis=(1, 2))
  assert np.all(np.diff(loss) <= 1e-7)


def test_wide_network_gd_follows_kernel_prediction():
  """A width-4096 NTK-parameterized network trained with optim.sgd stays near the linearised GD."""
  rng = np.random.RandomState(0)
  x = jnp.asarray(rng.randn(8, 5), jnp.float32)
  y = jnp.asarray(np.sign(rng.randn(8, 1)), jnp.float32)
  net = stax.mlp([4096], stax.Erf(), 1, W_std=1.5, b_std=0.1)
  _, params = net.init_fn(jax.random.PRNGKey(0), x.shape)
  lr, steps = 1.0, 30
  opt = optim.sgd(net, lr)
  loss = lambda p: 0.5 * jnp.mean(jnp.sum((net.apply_fn(p, x) - y) ** 2, -1))
  state = opt.init(params)
  f0 = net.apply_fn(params, x)
  for _ in range(steps):
    u, state = opt.update(jax.grad(loss)(params), state, params)
    params = optax.apply_updates(params, u)
  lin = predict.gradient_descent_mse(net.kernel_fn(x, None, "ntk"), y, lr)(
      fx_train_0=f0, steps=steps)
  gap = float(jnp.linalg.norm(net.apply_fn(params, x) - lin) / jnp.linalg.norm(y))
  print("relative gap to linearised GD at width 4096:", gap)
  assert gap < 0.05


def test_gp_posterior_interpolates():
  rng = np.random.RandomState(0)
  x = rng.randn(10, 3).astype(np.float32)
  net = stax.mlp([64], stax.Relu(), 1, W_std=1.4, b_std=0.1)
  k = net.kernel_fn(x, None, "nngp")
  y = rng.randn(10, 1).astype(np.float32)
  mean, cov = predict.gp_inference(k, y)("nngp", k, k)
  np.testing.assert_allclose(mean, y, atol=2e-2)
  assert float(jnp.max(jnp.abs(jnp.diag(cov)))) < 1e-2
