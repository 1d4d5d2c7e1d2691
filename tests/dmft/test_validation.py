"""Finite-width mup ensembles converge to the two-layer DMFT at the predicted rates."""
import numpy as np
import pytest

import dmft
from dmft import data


def test_power_law_fit_recovers_exponent():
  n = np.array([128, 256, 512, 1024])
  slope, c, se = dmft.fit_power_law(n, 3.0 * n ** -0.75)
  assert abs(slope + 0.75) < 1e-9 and abs(c - 3.0) < 1e-9 and se < 1e-9
  with pytest.raises(ValueError):
    dmft.fit_power_law([1, 2], [0.0, 1.0])


def test_ensemble_runs_through_flax_and_matches_at_init():
  x, y, _, _ = data.synthetic(n_train=6, n_test=2, dim=4, seed=0)
  ens = dmft.train_ensemble(x, y, width=64, n_seeds=4, steps=3, lr=0.5)
  assert ens.loss.shape == (4, 4) and ens.ntk_final.shape == (4, 6, 6)
  # Antithetic pairs: the initial outputs cancel exactly.
  np.testing.assert_allclose(ens.f_train[:, 0].mean(0), 0.0, atol=1e-6)


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
