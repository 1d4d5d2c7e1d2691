"""Finite Flax networks trained by full-batch GD approach kernels.predict's ensemble (Lee et al. 2019, Sec. 2.3-2.4).

Networks of widths 64..4096 under the ``ntk`` parameterization, 64 seeds each,
trained with optax SGD on 0.5 * mean((f - y)^2). Each network's test outputs after
``STEPS`` steps are the ensemble mean plus a term set by its own initial outputs
(whose law is the predicted covariance) plus an error that falls as width^-1/2:
``f_i = mean + (lin_i - mean) + O(width^-1/2)``, ``lin_i`` the infinite-width
linearised prediction from network i's initial outputs. The spread of ``f_i``
across seeds approaches the predicted covariance.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax

from kernels import flax_module, predict, slopes, stax

WIDTHS = (64, 256, 1024, 4096)
SEEDS, STEPS, P, Q, D = 64, 40, 12, 6, 4


def _network(width):
  return stax.serial(stax.Dense(width, W_std=1.5, b_std=0.1, parameterization="ntk"), stax.Erf(),
                     stax.Dense(1, W_std=1.2, b_std=0.1, parameterization="ntk"))


def _train(width, x, y, xt, lr):
  module = flax_module.to_flax(_network(width))
  keys = jax.random.split(jax.random.PRNGKey(width), SEEDS)
  variables = jax.vmap(lambda k: module.init(k, x))(keys)
  opt = optax.sgd(lr)

  def one(v):
    loss = lambda w: 0.5 * jnp.mean((module.apply(w, x) - y) ** 2)

    def step(carry, _):
      w, s = carry
      u, s = opt.update(jax.grad(loss)(w), s, w)
      return (optax.apply_updates(w, u), s), None

    (w, _), _ = jax.lax.scan(step, (v, opt.init(v)), None, length=STEPS)
    return module.apply(v, x), module.apply(v, xt), module.apply(w, xt)

  return jax.jit(jax.vmap(one))(variables)


def test_trained_networks_approach_the_ensemble_prediction():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(P, D)), jnp.float32)
  xt = jnp.asarray(rng.normal(size=(Q, D)), jnp.float32)
  y = jnp.asarray(np.sin(2 * np.asarray(x[:, :1])), jnp.float32)
  kernel_fn = _network(1).kernel_fn
  ntk, ntk_t = kernel_fn(x, None, "ntk"), kernel_fn(xt, x, "ntk")
  lr = 0.5 * predict.max_learning_rate(ntk, y.size)
  mean, cov = predict.gradient_descent_mse_ensemble(kernel_fn, x, y, lr)(
      x_test=xt, get="ntk", compute_cov=True, steps=STEPS)
  lin_fn = predict.gradient_descent_mse(ntk, y, lr)
  errors, spreads = [], []
  for width in WIDTHS:
    f0, g0, gt = _train(width, x, y, xt, lr)
    lin = jax.vmap(lambda f, g: lin_fn(fx_train_0=f, fx_test_0=g, k_test_train=ntk_t,
                                       steps=STEPS)[1])(f0, g0)
    # f_i - mean - (lin_i - mean): the part not explained by the infinite-width ensemble.
    errors.append(float(jnp.sqrt(jnp.mean((gt - lin) ** 2)) / jnp.sqrt(jnp.mean(mean ** 2))))
    sample_cov = np.cov(np.asarray(gt[..., 0]).T)
    spreads.append(float(np.mean(np.diag(sample_cov)) / np.mean(np.diag(np.asarray(cov)))))
    seed_mean_gap = np.abs(np.asarray(gt.mean(0) - mean))
  fit = slopes.loglog_fit(WIDTHS, errors)
  print("relative test-prediction error vs width:", dict(zip(WIDTHS, np.round(errors, 5))))
  print("error ~ width^slope:", fit)
  print("seed variance / predicted variance:", dict(zip(WIDTHS, np.round(spreads, 3))))
  assert fit.contains(-0.5) or abs(fit.slope + 0.5) < 0.1, fit
  assert errors[-1] < 0.05
  # 64 seeds: a sample variance has relative sd sqrt(2/63) = 0.18 per point.
  assert abs(spreads[-1] - 1) < 0.25, spreads
  # The seed mean is the ensemble mean within its standard error (4 sigma, any of the points).
  se = np.sqrt(np.diag(np.asarray(cov)) / SEEDS)[:, None]
  assert np.all(seed_mean_gap <= 4 * se + 0.05 * np.abs(np.asarray(mean))), (seed_mean_gap, se)
