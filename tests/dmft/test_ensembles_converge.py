"""Finite-width mup ensembles converge to the two-layer DMFT at the predicted rates."""
import jax
import numpy as np
import pytest

import dmft
from dmft import data


def test_ensemble_runs_through_flax_and_matches_at_init():
  x, y, _, _ = data.synthetic(n_train=6, n_test=2, dim=4, seed=0)
  ens = dmft.train_ensemble(x, y, width=64, n_seeds=4, steps=3, lr=0.5)
  assert ens.loss.shape == (4, 4) and ens.ntk_final.shape == (4, 6, 6)
  # Antithetic pairs: the initial outputs cancel exactly.
  np.testing.assert_allclose(ens.f_train[:, 0].mean(0), 0.0, atol=1e-6)


def test_split_pairs_union_is_the_average_at_initialisation():
  x, y, _, _ = data.synthetic(n_train=6, n_test=1, dim=4, seed=0)
  sp = dmft.train_split_pairs(x, y, width=32, n_pairs=3, steps=2, lr=0.5)
  assert sp.loss_a.shape == sp.loss_union.shape == (3, 3)
  # f_union = (f_a + f_b) / 2 at step 0, so the loss difference there is the
  # mean of (f_a - f_b)^2 / 8: check it from the two halves' own outputs.
  net = dmft.build_network(32)
  keys = jax.random.split(jax.random.PRNGKey(0), 6)
  f = np.stack([np.asarray(net.apply_fn(net.init_fn(k, x.shape)[1], x))[:, 0]
                for k in keys])
  expected = np.mean((f[:3] - f[3:]) ** 2, axis=1) / 8
  np.testing.assert_allclose(sp.difference[:, 0], expected, rtol=1e-4, atol=1e-8)
  with pytest.raises(ValueError, match="two-layer"):
    dmft.train_split_pairs(x, y, width=32, depth=2)


@pytest.mark.slow
def test_split_pairs_resolve_the_one_over_n_bias():
  """bias(N) - bias(2N) falls as 1/N (theory exponent -1)."""
  x, y, _, _ = data.synthetic(n_train=10, n_test=1, dim=5, seed=0)
  pairs = [dmft.train_split_pairs(x, y, width=n, n_pairs=16, seed=1, steps=30,
                                  lr=1.0, gamma0=1.0, activation="relu")
           for n in (128, 512, 2048)]
  split = dmft.measure_split_bias(pairs)
  print(split.report())
  slope, se = split.exponent
  assert -1.3 < slope < -0.7
  # Resolved: every difference is at least 2 standard errors from zero.
  assert np.all(split.difference > 2 * split.stderr)


@pytest.mark.slow
def test_width_convergence_rates():
  x, y, _, _ = data.synthetic(n_train=10, n_test=1, dim=5, seed=0)
  steps, lr = 30, 1.0
  theory = dmft.solve_two_layer(x, y, activation="relu", gamma0=1.0, lr=lr,
                                steps=steps, n_samples=2 ** 17)
  ens = dmft.train_widths(x, y, [128, 512, 2048], n_seeds=16, steps=steps,
                          lr=lr, gamma0=1.0, activation="relu")
  conv = dmft.measure_width_convergence(ens, theory)
  print(conv.report())
  spread = conv.exponents["loss_spread"][0]
  msd = conv.exponents["f_msd"][0]
  ntk_spread = conv.exponents["ntk_spread"][0]
  assert -0.7 < spread < -0.3
  assert -0.7 < ntk_spread < -0.3
  assert -1.3 < msd < -0.7
  assert np.all(np.diff(conv.loss_bias) < 0)
