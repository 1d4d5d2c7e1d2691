"""kernels.slopes: loglog_fit exact on power laws, honest intervals on noisy ones; windowed_slopes."""
import numpy as np
import pytest

from kernels.slopes import interval_text
from kernels.slopes import loglog_fit
from kernels.slopes import windowed_slopes


def test_exact_power_law():
  x = np.array([64, 128, 256, 512, 1024.])
  fit = loglog_fit(x, 3.0 * x ** -0.5)
  assert fit.slope == pytest.approx(-0.5, abs=1e-12)
  assert np.exp(fit.intercept) == pytest.approx(3.0, rel=1e-12)
  assert fit.stderr == pytest.approx(0.0, abs=1e-12)
  np.testing.assert_allclose(fit.predict(x), 3.0 * x ** -0.5, rtol=1e-12)
  print(fit)


def test_interval_covers_the_true_slope_at_its_level():
  rng = np.random.default_rng(0)
  x = np.geomspace(10, 1e4, 8)
  hits = [loglog_fit(x, x ** -0.7 * np.exp(0.1 * rng.standard_normal(x.size))).contains(-0.7)
          for _ in range(1000)]
  coverage = float(np.mean(hits))
  print(f"coverage of the 95% interval: {coverage:.3f}")
  assert 0.93 <= coverage <= 0.97


def test_two_points_have_no_interval():
  fit = loglog_fit([1, 4], [1, 2])
  assert fit.slope == pytest.approx(0.5)
  assert np.isnan(fit.stderr) and "no interval" in str(fit)


@pytest.mark.parametrize("x,y,word", [
    ([1], [1], "at least two"), ([1, 2], [1], "same length"), ([1, -2], [1, 2], "every x"),
    ([1, 2], [1, np.nan], "every y"), ([2, 2], [1, 3], "two different"),
])
def test_bad_input(x, y, word):
  with pytest.raises(ValueError, match=word):
    loglog_fit(x, y)


def test_windowed_slopes_follow_a_drifting_exponent():
  # log y = -0.5 log x - 0.02 (log x)^2: the local slope is -0.5 - 0.04 log x.
  x = np.geomspace(1.0, 4.0 ** 3, 61)
  centres, local = windowed_slopes(x, np.exp(-0.5 * np.log(x) - 0.02 * np.log(x) ** 2))
  np.testing.assert_allclose(centres, 2.0 * 4.0 ** np.arange(3), rtol=1e-12)
  np.testing.assert_allclose(local, -0.5 - 0.04 * np.log(centres), atol=1e-12)
  # Each window is loglog_fit over the points in it, both ends included.
  inside = (x >= 4.0 - 1e-9) & (x <= 16.0 + 1e-9)
  assert local[1] == loglog_fit(x[inside], np.exp(-0.5 * np.log(x[inside])
                                                  - 0.02 * np.log(x[inside]) ** 2)).slope


def test_windowed_slopes_skip_sparse_windows():
  centres, local = windowed_slopes([1.0, 2.0, 3.0, 100.0], [1.0, 2.0, 3.0, 4.0])
  assert centres.size == 0 and local.size == 0
  centres, local = windowed_slopes([1.0, 2.0, 3.0, 100.0], [1.0, 2.0, 3.0, 4.0], min_points=3)
  assert centres.tolist() == [2.0] and local[0] == pytest.approx(1.0)


@pytest.mark.parametrize("x,y,kw,word", [
    ([1, 2], [1], {}, "same length"), ([1, 0], [1, 2], {}, "every x"),
    ([1, 2], [1, 2], dict(factor=1.0), "factor"), ([1, 2], [1, 2], dict(min_points=1), "min_points"),
])
def test_windowed_slopes_bad_input(x, y, kw, word):
  with pytest.raises(ValueError, match=word):
    windowed_slopes(x, y, **kw)


def test_interval_text_is_the_fits_own_interval():
  x = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
  y = x ** -0.5 * np.exp(0.05 * np.array([1.0, -1.0, 0.5, 0.0, -0.5]))
  fit = loglog_fit(x, y)
  text = interval_text(fit.slope, fit.stderr, fit.n)
  assert text == (f"{fit.slope:+.3f} +/- {fit.stderr:.3f} (95% interval {fit.low:+.3f} to "
                  f"{fit.high:+.3f}, 5 points)")
  # Three points: one degree of freedom, 12.7 standard errors each side.
  assert "interval -1.771 to +0.771" in interval_text(-0.5, 0.1, 3)
  assert interval_text(-0.5, float("nan"), 2) == "-0.500 +/- nan (2 points, no interval)"
