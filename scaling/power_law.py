"""Power laws with an offset: L(x) = E + A x^-alpha.

Fit on log L with the Huber loss of LSE(a - alpha log x, e) - log L, A =
exp(a), E = exp(e), from a grid of initial points solved together by the
vmapped L-BFGS of `scaling.lbfgs` (the one-variable form of the procedure of
Hoffmann et al. 2022, Sec. 3.3). Float64 inside a scoped
`jax.enable_x64(True)`.
"""
import dataclasses
import itertools
import warnings
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from kernels import validation
from scaling import bootstrap as bootstrap_lib
from scaling import huber as huber_lib
from scaling import lbfgs

PARAM_NAMES = ("A", "E", "alpha")
# Stopping rules of `scaling.lbfgs` (on the objective divided by delta).
GTOL = 1e-7
FTOL = 1e-12


def default_grid() -> np.ndarray:
  """Initial points (a, e, alpha): a in {0, 2.5, ..., 25}, e in {-2, ..., 2}, alpha in {0.05, ..., 2}."""
  grid = itertools.product(np.arange(0.0, 25.01, 2.5), np.arange(-2, 2.01, 0.5),
                           np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5,
                                     2.0]))
  return np.asarray(list(grid), np.float64)


def objective(theta, weights, log_x, log_y, delta):
  """Sum of Huber(LSE(a - alpha log x, e) - log y) / delta; Hoffmann et al. 2022, Sec. 3.3."""
  a, e, alpha = theta[0], theta[1], theta[2]
  pred = jnp.logaddexp(a - alpha * log_x, e)
  return jnp.sum(weights * huber_lib.huber(pred - log_y, delta)) / delta


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
  """Result of `fit_power_law`: L = E + A x^-alpha, with optional intervals."""
  A: float
  E: float
  alpha: float
  objective: float
  converged: bool
  num_points: int
  intervals: Optional[dict] = None
  bootstrap_params: Optional[np.ndarray] = None

  def predict(self, x) -> np.ndarray:
    return self.E + self.A * np.asarray(x, np.float64)**(-self.alpha)

  def to_dict(self) -> dict:
    out = dict(A=self.A, E=self.E, alpha=self.alpha, objective=self.objective,
               converged=self.converged, num_points=self.num_points)
    if self.intervals:
      out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
    return out


def fit_power_law(x, y, *, delta: float = 1e-3, bootstrap: int = 0,
                  seed: int = 0, confidence: float = 0.95,
                  grid: Optional[np.ndarray] = None,
                  max_iter: int = 500) -> PowerLawFit:
  """Fits y = E + A x^-alpha by Huber regression on log y (offset power law).

  Args:
    x: sizes (model size, tokens, compute, samples...), positive.
    y: losses, positive.
    delta: Huber threshold on log residuals.
    bootstrap: number of resamples for percentile intervals (0: none).
    seed: resampling seed.
    confidence: interval level.
    grid: (starts, 3) initial (a, e, alpha); defaults to `default_grid()`.
    max_iter: L-BFGS iteration cap per start.

  Returns:
    A `PowerLawFit`; `converged` False (with a RuntimeWarning) when the best
    start (lowest objective) did not pass the optimality test of
    `scaling.lbfgs`.

  Raises:
    ValueError/TypeError: non-positive or non-finite values, mismatched
      lengths, 3 or fewer points, all-equal `x` (alpha not identifiable),
      a bad `delta`, `bootstrap`, `confidence` or `grid`.
  """
  x = validation.as_positive_1d(x, "x")
  y = validation.as_positive_1d(y, "y")
  num = validation.check_same_length(x=x, y=y)
  validation.check_enough_points(num, 3, "fit_power_law")
  validation.check_int(seed, "seed")
  validation.check_fit_options(delta=delta, bootstrap=bootstrap,
                               confidence=confidence, max_iter=max_iter)
  grid = validation.check_grid(default_grid() if grid is None else grid,
                               len(PARAM_NAMES))
  validation.check_varies(x, "x", "alpha")
  with jax.enable_x64(True):
    shared = (jnp.log(x), jnp.log(y), jnp.asarray(delta, jnp.float64))
    res = jax.tree.map(np.asarray, lbfgs.minimize_many(
        objective, jnp.asarray(grid), (jnp.ones(num),) + shared, None,
        max_iter=max_iter, gtol=GTOL, ftol=FTOL))
    i, converged = lbfgs.best_start(res)
    a, e, alpha = res.x[i]
    if not converged:
      warnings.warn("fit_power_law: the best start did not converge "
                    f"(gradient norm {res.grad_norm[i]:.2e} after "
                    f"{res.num_iter[i]} iterations, max_iter={max_iter}); "
                    "the result is flagged converged=False; raise max_iter.",
                    RuntimeWarning, stacklevel=2)
    intervals = boots = None
    if bootstrap:
      w = bootstrap_lib.resample_weights(seed, num, bootstrap)
      x0s = np.tile(res.x[i], (bootstrap, 1))
      r = jax.tree.map(np.asarray, lbfgs.minimize_many(
          objective, jnp.asarray(x0s), shared, (jnp.asarray(w),),
          max_iter=max_iter, gtol=GTOL, ftol=FTOL))
      ok = r.converged
      boots = np.stack([np.exp(r.x[:, 0]), np.exp(r.x[:, 1]), r.x[:, 2]], 1)
      intervals = bootstrap_lib.percentile_intervals(boots[ok], PARAM_NAMES,
                                                     confidence)
  return PowerLawFit(A=float(np.exp(a)), E=float(np.exp(e)), alpha=float(alpha),
                     objective=float(res.value[i] * delta),
                     converged=converged, num_points=num, intervals=intervals,
                     bootstrap_params=boots)
