"""kernels.slopes.loglog_fit: exact on power laws, honest intervals on noisy ones."""
import numpy as np
import pytest

from kernels.slopes import loglog_fit


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
