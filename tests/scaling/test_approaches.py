"""Chinchilla approaches 1 and 2 recover the exponent of a known law."""
import numpy as np
import pytest

import scaling

P = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)
A_TRUE = P["beta"] / (P["alpha"] + P["beta"])


def law(n, d):
  return P["E"] + P["A"] / n**P["alpha"] + P["B"] / d**P["beta"]


def test_approach1_envelope_recovers_a():
  sizes = np.geomspace(1e7, 1e11, 25)
  n, d = [], []
  for s in sizes:
    tokens = np.geomspace(1e8, 1e13, 60)
    n.append(np.full(tokens.shape, s))
    d.append(tokens)
  n, d = np.concatenate(n), np.concatenate(d)
  fit = scaling.approach1(n, d, law(n, d), num_budgets=25)
  print("approach1 a", fit.a, fit.a_interval, "b", fit.b, "true a", A_TRUE)
  assert fit.a == pytest.approx(A_TRUE, abs=0.04)
  assert fit.a + fit.b == pytest.approx(1.0, abs=0.02)
  # Least-squares intervals around the slopes, narrow on a noiseless envelope.
  for value, (low, high) in ((fit.a, fit.a_interval), (fit.b, fit.b_interval)):
    assert low < value < high and high - low < 0.1
  assert fit.to_dict()["a_interval"] == list(fit.a_interval)


def test_approach2_isoflop_recovers_a():
  n_all, c_all = [], []
  for c in np.geomspace(1e18, 1e22, 6):
    g = (P["alpha"] * P["A"] / (P["beta"] * P["B"]))**(1 / 0.62)
    n_opt = g * (c / 6)**A_TRUE
    n = n_opt * np.geomspace(0.25, 4, 9)
    n_all.append(n)
    c_all.append(np.full(n.shape, c))
  n, c = np.concatenate(n_all), np.concatenate(c_all)
  fit = scaling.approach2(n, c, law(n, c / (6 * n)))
  print("approach2 a", fit.a, "true a", A_TRUE)
  assert fit.a == pytest.approx(A_TRUE, abs=0.02)


def test_approaches_reject_bad_input():
  with pytest.raises(ValueError, match="two training curves"):
    scaling.approach1([1e8, 1e8], [1e9, 1e10], [3.0, 2.9])
  with pytest.raises(ValueError, match="IsoFLOP"):
    scaling.approach2([1e8, 2e8], [1e19, 1e19], [3.0, 2.9])
  with pytest.raises(ValueError, match="loss"):
    scaling.approach2([1e8, 2e8, 3e8], [1e19] * 3, [3.0, np.nan, 2.0])
