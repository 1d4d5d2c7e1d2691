"""The one log-log slope fitter of the project: rates of convergence and scaling exponents.

Every measured rate (finite-width error against width, DMFT error against width,
a kernel's change against depth, time against n) is the least-squares slope of
log y against log x, with a Student-t interval from the residuals (the ordinary
least-squares interval, e.g. Seber & Lee, "Linear Regression Analysis", eq. 5.17).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class LogLogFit:
  """``log y = intercept + slope * log x`` with a two-sided interval for the slope."""
  slope: float
  intercept: float
  stderr: float  # standard error of the slope (nan with two points)
  low: float  # lower end of the interval (nan with two points)
  high: float  # upper end of the interval
  confidence: float
  n: int

  def contains(self, value: float) -> bool:
    """True when ``value`` lies inside the interval."""
    return bool(self.low <= value <= self.high)

  def predict(self, x):
    """The fitted power law ``exp(intercept) * x**slope``."""
    return math.exp(self.intercept) * np.asarray(x, float) ** self.slope

  def __str__(self) -> str:
    if math.isfinite(self.stderr):
      pct = round(100 * self.confidence)
      return (f"slope {self.slope:.3f} ({pct}% interval {self.low:.3f} to {self.high:.3f}, "
              f"{self.n} points)")
    return f"slope {self.slope:.3f} ({self.n} points, no interval)"


def _t_quantile(p: float, dof: int) -> float:
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return float(stats.t.ppf(p, dof))


def loglog_fit(x, y, confidence: float = 0.95) -> LogLogFit:
  """Least-squares slope of log(y) against log(x), with its Student-t interval.

  Raises ValueError (naming the argument) for fewer than two points, shapes that
  differ, or values that are not finite and positive; and when every x is equal.
  """
  x = np.asarray(x, dtype=float).ravel()
  y = np.asarray(y, dtype=float).ravel()
  if x.shape != y.shape:
    raise ValueError(f"loglog_fit: x and y must have the same length, got {x.size} and {y.size}.")
  if x.size < 2:
    raise ValueError(f"loglog_fit: x needs at least two points, got {x.size}.")
  for name, v in (("x", x), ("y", y)):
    bad = ~(np.isfinite(v) & (v > 0))
    if bad.any():
      raise ValueError(f"loglog_fit: every {name} must be finite and positive; "
                       f"{name}[{int(np.argmax(bad))}] = {v[bad][0]!r}.")
  if not 0 < confidence < 1:
    raise ValueError(f"loglog_fit: confidence must lie in (0, 1), got {confidence!r}.")
  lx, ly = np.log(x), np.log(y)
  sxx = float(np.sum((lx - lx.mean()) ** 2))
  if sxx == 0:
    raise ValueError("loglog_fit: x must take at least two different values.")
  slope = float(np.sum((lx - lx.mean()) * (ly - ly.mean())) / sxx)
  intercept = float(ly.mean() - slope * lx.mean())
  n = x.size
  if n > 2:
    resid = ly - (intercept + slope * lx)
    stderr = math.sqrt(float(resid @ resid) / (n - 2) / sxx)
    half = _t_quantile(0.5 + confidence / 2, n - 2) * stderr
  else:
    stderr = half = float("nan")
  return LogLogFit(slope=slope, intercept=intercept, stderr=stderr, low=slope - half,
                   high=slope + half, confidence=confidence, n=n)


def interval_text(slope: float, stderr: float, n: int, confidence: float = 0.95) -> str:
  """``slope +/- stderr`` with its Student-t interval from ``n`` points (n - 2 degrees of
  freedom), as `loglog_fit` computes it: with few points the interval is much wider than
  the standard error (3 points: 12.7 standard errors each side at 95%)."""
  text = f"{slope:+.3f} +/- {stderr:.3f}"
  if n > 2 and math.isfinite(stderr):
    half = _t_quantile(0.5 + confidence / 2, n - 2) * stderr
    return (f"{text} ({round(100 * confidence)}% interval {slope - half:+.3f} to "
            f"{slope + half:+.3f}, {n} points)")
  return f"{text} ({n} points, no interval)"


def windowed_slopes(x, y, factor: float = 4.0, min_points: int = 5):
  """Local log-log slopes: `loglog_fit` over consecutive windows of x, each a factor wide.

  The windows run from min(x) upwards, [min x * factor**k, min x * factor**(k + 1)]
  (both ends included); a window with fewer than ``min_points`` points is skipped.
  Their drift shows how far a measured power law is from its asymptote.

  Returns:
    (centres, slopes): the geometric centre of each window kept and the least-squares
    slope of log y against log x in it, as arrays (empty when no window is kept).
  """
  x = np.asarray(x, dtype=float).ravel()
  y = np.asarray(y, dtype=float).ravel()
  if x.shape != y.shape:
    raise ValueError(f"windowed_slopes: x and y must have the same length, got {x.size} "
                     f"and {y.size}.")
  if not (math.isfinite(factor) and factor > 1):
    raise ValueError(f"windowed_slopes: factor must be a finite number > 1, got {factor!r}.")
  if isinstance(min_points, bool) or not isinstance(min_points, int) or min_points < 2:
    raise ValueError(f"windowed_slopes: min_points must be an int >= 2, got {min_points!r}.")
  bad = ~(np.isfinite(x) & (x > 0))
  if bad.any():
    raise ValueError("windowed_slopes: every x must be finite and positive; "
                     f"x[{int(np.argmax(bad))}] = {x[bad][0]!r}.")
  centres, local = [], []
  if x.size:
    lx = np.log(x)
    edges = np.arange(lx.min(), lx.max() + 1e-9, math.log(factor))
    for lo, hi in zip(edges[:-1], edges[1:]):
      w = (lx >= lo) & (lx <= hi)
      if w.sum() >= min_points:
        centres.append(float(np.exp((lo + hi) / 2)))
        local.append(loglog_fit(x[w], y[w]).slope)
  return np.asarray(centres), np.asarray(local)
