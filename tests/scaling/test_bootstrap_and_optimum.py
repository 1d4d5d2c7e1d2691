"""Bootstrap intervals, their coverage, and the compute-optimal allocation."""
import numpy as np
import pytest
from scipy import optimize

import scaling
from scaling import data

TRUE = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)


def test_compute_optimal_matches_numeric_minimum():
  fit = scaling.ChinchillaFit(**TRUE, objective=0.0, converged=True,
                              num_converged_starts=1, num_starts_at_optimum=1,
                              num_points=10)
  alloc = scaling.compute_optimal(fit, [1e20, 1e23])
  for c, n_opt in zip(alloc.C, alloc.N_opt):
    res = optimize.minimize_scalar(
        lambda u: fit.predict(np.exp(u), c / (6 * np.exp(u))),
        bounds=(np.log(1e6), np.log(1e13)), method="bounded",
        options=dict(xatol=1e-10))
    assert np.exp(res.x) == pytest.approx(n_opt, rel=1e-4)
  assert alloc.a == pytest.approx(0.28 / 0.62)
  np.testing.assert_allclose(6 * alloc.N_opt * alloc.D_opt, alloc.C)


@pytest.mark.slow
def test_chinchilla_bootstrap_intervals_cover_truth():
  runs = data.synthetic_runs(TRUE, num_sizes=12, num_per_size=20, noise=0.01,
                             seed=7)
  fit = scaling.fit_chinchilla(runs.N, runs.D, runs.loss, bootstrap=64,
                               seed=0, bootstrap_starts=3)
  print("intervals", fit.intervals, "converged", fit.bootstrap_converged)
  assert fit.bootstrap_converged > 0.9
  for k in ("E", "alpha", "beta"):
    lo, hi = fit.intervals[k]
    assert lo < hi
    assert lo <= getattr(fit, k) <= hi
  alloc = scaling.compute_optimal(fit, [1e21, 1e24])
  assert alloc.N_interval.shape == (2, 2)
  lo, hi = alloc.a_interval
  assert lo <= fit.a <= hi


@pytest.mark.slow
def test_power_law_bootstrap_coverage():
  """95% percentile intervals of alpha cover the truth in most repetitions."""
  x = np.geomspace(1e2, 1e6, 30)
  hits = 0
  reps = 20
  for rep in range(reps):
    rng = np.random.default_rng(rep)
    y = (1.5 + 40.0 * x**-0.45) * np.exp(0.02 * rng.standard_normal(x.size))
    fit = scaling.fit_power_law(x, y, bootstrap=60, seed=rep)
    lo, hi = fit.intervals["alpha"]
    hits += lo <= 0.45 <= hi
  print(f"alpha coverage {hits}/{reps}")
  assert hits >= 15


def test_power_law_recovers_parameters_and_rejects_bad_input():
  x = np.geomspace(1e2, 1e6, 30)  # 30 points, as in the coverage test
  y = (2.0 + 30.0 * x**-0.5) * np.exp(
      0.003 * np.random.default_rng(0).standard_normal(30))
  fit = scaling.fit_power_law(x, y)
  assert fit.converged
  assert fit.alpha == pytest.approx(0.5, abs=0.03)
  assert fit.E == pytest.approx(2.0, rel=0.02)
  with pytest.raises(ValueError, match="x"):
    scaling.fit_power_law(-x, y)
  with pytest.raises(ValueError, match="needs more than 3"):
    scaling.fit_power_law(x[:3], y[:3])


def test_percentile_interval_refuses_non_finite_samples():
  """A NaN among the samples made the interval (nan, nan) without a word."""
  assert scaling.percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0))
  with pytest.raises(ValueError, match="finite"):
    scaling.percentile_interval([1.0, np.nan, 2.0])
  with pytest.raises(ValueError, match="confidence"):
    scaling.percentile_interval([1.0, 2.0], confidence=1.5)
