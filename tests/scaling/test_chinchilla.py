"""Chinchilla approach 3: recovery, real data, agreement with SciPy, bad input."""
import warnings

import numpy as np
import pytest
from scipy import optimize

import scaling
from benchmarks import scaling_fit_speed
from scaling import chinchilla
from scaling import data

TRUE = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)

# Besiroglu, Erdil, Barnett and You 2024, "Chinchilla Scaling: A replication
# attempt" (arXiv:2404.10102), Table 1: their approach-3 estimates on the 240
# kept runs, with standard errors from 4000 bootstrap resamples in
# parentheses: A = 482.01 (124.58), B = 2085.43 (1293.23), E = 1.8172 (0.03),
# alpha = 0.3478 (0.02), beta = 0.3658 (0.02), so a = beta/(alpha + beta) =
# 0.5126. The 95% intervals below are estimate +- 1.96 standard errors (B's
# lower end clipped at 0).
PUBLISHED = dict(A=(482.01, 124.58), B=(2085.43, 1293.23), E=(1.8172, 0.03),
                 alpha=(0.3478, 0.02), beta=(0.3658, 0.02))


def _interval(name):
  est, se = PUBLISHED[name]
  return max(est - 1.96 * se, 0.0), est + 1.96 * se


def test_grid_is_hoffmanns():
  g = chinchilla.hoffmann_grid()
  assert g.shape == (4500, 5)
  assert sorted(set(g[:, 3])) == [0.0, 0.5, 1.0, 1.5, 2.0]
  assert sorted(set(g[:, 0])) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]
  assert sorted(set(g[:, 2])) == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_recovers_known_law_from_noisy_runs():
  runs = data.synthetic_runs(TRUE, num_sizes=12, num_per_size=20, noise=0.005,
                             seed=1)
  fit = scaling.fit_chinchilla(runs.N, runs.D, runs.loss)
  assert fit.converged
  print("recovered", fit.params)
  assert fit.E == pytest.approx(TRUE["E"], rel=0.03)
  assert fit.alpha == pytest.approx(TRUE["alpha"], abs=0.03)
  assert fit.beta == pytest.approx(TRUE["beta"], abs=0.03)
  assert fit.a == pytest.approx(0.28 / 0.62, abs=0.03)


def test_real_data_inside_published_intervals(shared_data):
  """Our fit on the 240 kept runs lies inside the replication's 95% intervals."""
  runs = data.load_chinchilla_csv(
      str(shared_data / "chinchilla_svg_extracted.csv"))
  assert len(runs.N) == 240 and runs.num_highest_dropped == 5
  fit = scaling.fit_chinchilla(runs.N, runs.D, runs.loss)
  print("real-data fit", fit.params, "objective", fit.objective)
  assert fit.converged
  for name in chinchilla.PARAM_NAMES:
    lo, hi = _interval(name)
    assert lo <= getattr(fit, name) <= hi, (name, getattr(fit, name), lo, hi)
  # Point estimates themselves agree closely with the replication's.
  assert fit.E == pytest.approx(1.8172, abs=0.005)
  assert fit.alpha == pytest.approx(0.3478, abs=0.005)
  assert fit.beta == pytest.approx(0.3658, abs=0.005)
  assert fit.a == pytest.approx(0.5126, abs=0.005)


def test_vmapped_grid_matches_scipy_lbfgsb():
  runs = data.synthetic_runs(TRUE, num_sizes=12, num_per_size=20, noise=0.01,
                             seed=3)
  grid = chinchilla.hoffmann_grid()[::150]  # 30 starts
  fit = scaling.fit_chinchilla(runs.N, runs.D, runs.loss, grid=grid)
  logs = (np.log(runs.N), np.log(runs.D), np.log(runs.loss), 1e-3)
  best = min((optimize.minimize(scaling_fit_speed.numpy_objective, x0,
                                jac=True, method="L-BFGS-B", args=logs)
               for x0 in grid),
             key=lambda r: r.fun if np.isfinite(r.fun) else np.inf)
  print("jax objective", fit.objective, "scipy objective", best.fun * 1e-3)
  assert fit.objective == pytest.approx(best.fun * 1e-3, rel=1e-6)
  np.testing.assert_allclose(
      [fit.E, fit.alpha, fit.beta],
      [np.exp(best.x[2]), best.x[3], best.x[4]], rtol=1e-3)


@pytest.mark.parametrize("field,value,match", [
    ("loss", -1.0, "loss"), ("N", 0.0, "N"), ("D", np.inf, "D"),
    ("loss", np.nan, "NaN")])
def test_bad_values_raise_naming_argument(field, value, match):
  arrays = dict(N=np.geomspace(1e8, 1e10, 8), D=np.geomspace(1e9, 1e11, 8),
                loss=np.linspace(3, 2, 8))
  arrays[field] = arrays[field].copy()
  arrays[field][2] = value
  with pytest.raises(ValueError, match=match):
    scaling.fit_chinchilla(arrays["N"], arrays["D"], arrays["loss"])


def test_too_few_points_and_mismatch_and_types():
  with pytest.raises(ValueError, match="needs more than 5"):
    scaling.fit_chinchilla([1e8] * 5, [1e9] * 5, [3.0] * 5)
  with pytest.raises(ValueError, match="same length"):
    scaling.fit_chinchilla([1e8] * 7, [1e9] * 6, [3.0] * 7)
  with pytest.raises(TypeError, match="N"):
    scaling.fit_chinchilla(["a"] * 7, [1e9] * 7, [3.0] * 7)
  with pytest.raises(ValueError, match="delta"):
    scaling.fit_chinchilla([1e8] * 7, [1e9] * 7, [3.0] * 7, delta=0.0)


def test_non_convergence_is_flagged():
  # Same shapes as the SciPy comparison, so the compiled program is reused.
  runs = data.synthetic_runs(TRUE, num_sizes=12, num_per_size=20, seed=4)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fit = scaling.fit_chinchilla(runs.N, runs.D, runs.loss,
                                 grid=chinchilla.hoffmann_grid()[::150],
                                 max_iter=2)
  assert not fit.converged
  assert any(issubclass(w.category, RuntimeWarning) for w in caught)


def test_csv_loader_drops_nan_rows_and_highest(tmp_path):
  path = tmp_path / "runs.csv"
  rows = ["x,y,color,Model Size,Training FLOP,hex_color,loss"]
  for i in range(10):
    rows.append(f"0,0,#000,{1e8 * (i + 1)},{1e19 * (i + 1)},#000,{3 - 0.1 * i}")
  rows.append("0,0,#000,1e9,,#000,2.5")
  path.write_text("\n".join(rows) + "\n")
  runs = data.load_chinchilla_csv(str(path), drop_highest=2)
  assert runs.num_read == 11 and runs.num_nan_dropped == 1
  assert len(runs.N) == 8 and runs.loss.max() == pytest.approx(2.8)
  np.testing.assert_allclose(runs.D, runs.C / (6 * runs.N))


def test_bad_options_and_unidentifiable_exponents_raise():
  n, d = np.geomspace(1e8, 1e10, 8), np.geomspace(1e9, 1e11, 8)[::-1]
  loss = 1.7 + 400 / n**0.34 + 410 / d**0.28
  fit = scaling.fit_chinchilla
  with pytest.raises(TypeError, match="bootstrap"):
    fit(n, d, loss, bootstrap=True)
  with pytest.raises(ValueError, match="grid"):
    fit(n, d, loss, grid=np.zeros((0, 5)))
  with pytest.raises(ValueError, match="max_iter"):
    fit(n, d, loss, max_iter=0)
  with pytest.raises(ValueError, match="`N` must vary"):
    fit(np.full(8, 1e9), d, loss)
  with pytest.raises(ValueError, match="`D` must vary"):
    fit(n, np.repeat([1e10, 1e11], 4), loss)
  x, y = np.geomspace(1e2, 1e6, 10), np.linspace(3.0, 2.0, 10)
  with pytest.raises(ValueError, match="`x` must vary"):
    scaling.fit_power_law(np.full(10, 1e3), y)
  with pytest.raises(TypeError, match="bootstrap"):
    scaling.fit_power_law(x, y, bootstrap=True)
  with pytest.raises(ValueError, match="grid"):
    scaling.fit_power_law(x, y, grid=[])
  with pytest.raises(ValueError, match="rtol"):
    scaling.approach2(np.geomspace(1e8, 1e9, 6), [1e19] * 6, y[:6], rtol=-1)
  with pytest.raises(ValueError, match="num_budgets"):
    scaling.approach1(np.repeat([1e8, 2e8], 3), np.tile([1e9, 2e9, 4e9], 2),
                      y[:6], num_budgets=0)
