"""Chinchilla approach 3: fit L(N, D) = E + A/N^alpha + B/D^beta.

The fit follows Hoffmann et al. 2022 (Sec. 3.3 and App. D.2): parameters
(a, b, e, alpha, beta) with A = exp(a), B = exp(b), E = exp(e); the model
log-loss is LSE(a - alpha log N, b - beta log D, e); the objective is the sum
over runs of the Huber loss (delta = 1e-3) of its difference with log L; it is
minimised by L-BFGS from every point of a grid of initial values, keeping the
best. All starts run as one jitted, vmapped program (`scaling.lbfgs`).

Precision: the fit always runs in float64 inside a scoped
`jax.enable_x64(True)` context, so the global `jax_enable_x64` flag is never
changed. Results come back as NumPy float64.

Internally the objective is divided by delta (so it reads as an L1-like sum of
log residuals of order one); this changes no minimiser, only the scale the
stopping tolerances see. Reported objective values are the paper's (undivided).
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

PARAM_NAMES = ("A", "B", "E", "alpha", "beta")
NUM_PARAMS = 5
# Stopping rules of the L-BFGS runs (on the objective divided by delta); FTOL
# is SciPy L-BFGS-B's default (factr = 1e7 times machine epsilon).
FTOL = 2.2e-9
GTOL = 1e-5


def hoffmann_grid() -> np.ndarray:
  """The 4500 initial points of Hoffmann et al. 2022 (App. D.2), as (a, b, e, alpha, beta).

  alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in
  {0, 5, ..., 25}.
  """
  alphas = np.arange(0.0, 2.01, 0.5)
  betas = np.arange(0.0, 2.01, 0.5)
  es = np.arange(-1.0, 1.01, 0.5)
  as_ = np.arange(0.0, 25.01, 5.0)
  bs = np.arange(0.0, 25.01, 5.0)
  grid = [(a, b, e, al, be)
          for al, be, e, a, b in itertools.product(alphas, betas, es, as_, bs)]
  return np.asarray(grid, dtype=np.float64)


def log_loss_model(theta, log_n, log_d):
  """log(E + A/N^alpha + B/D^beta) in (a, b, e) form; Hoffmann et al. 2022, eq. (10).

  Computed as log(exp(a - alpha log N) + exp(b - beta log D) + exp(e)), with
  exponents capped at 700 so that no term overflows in float64 (the cap only
  binds far from any fit, where the value is then merely large).
  """
  a, b, e, alpha, beta = theta[0], theta[1], theta[2], theta[3], theta[4]
  t1 = jnp.exp(jnp.minimum(a - alpha * log_n, 700.0))
  t2 = jnp.exp(jnp.minimum(b - beta * log_d, 700.0))
  return jnp.log(t1 + t2 + jnp.exp(jnp.minimum(e, 700.0)))


def objective(theta, weights, log_n, log_d, log_loss, delta):
  """Sum of Huber(model - log L) over runs; Hoffmann et al. 2022, eq. (10).

  `weights` counts each run (bootstrap resamples use multiplicities), and the
  result is divided by `delta` (see module docstring).
  """
  r = log_loss_model(theta, log_n, log_d) - log_loss
  return jnp.sum(weights * huber_lib.huber(r, delta)) / delta


@dataclasses.dataclass(frozen=True)
class ChinchillaFit:
  """Result of `fit_chinchilla`.

  Attributes:
    A, B, E, alpha, beta: best-fit parameters.
    objective: sum of Huber losses at the optimum (paper's scale).
    converged: whether the best start met the L-BFGS stopping rules.
    num_converged_starts: starts that converged.
    num_starts_at_optimum: converged starts within 1e-6 (relative) of the
      best objective; a small count means a rugged objective.
    num_points: runs used.
    intervals: {name: (low, high)} percentile bootstrap intervals, or None.
    bootstrap_params: (bootstrap, 5) array of refits (NaN rows: refits that did not
      converge, so that bands built from it, such as `compute_optimal`'s, leave them
      out as the intervals do), or None.
    bootstrap_converged: fraction of bootstrap refits that converged.
    confidence: level of the intervals.
  """
  A: float
  B: float
  E: float
  alpha: float
  beta: float
  objective: float
  converged: bool
  num_converged_starts: int
  num_starts_at_optimum: int
  num_points: int
  intervals: Optional[dict] = None
  bootstrap_params: Optional[np.ndarray] = None
  bootstrap_converged: Optional[float] = None
  confidence: float = 0.95

  @property
  def params(self) -> dict:
    return {k: getattr(self, k) for k in PARAM_NAMES}

  @property
  def a(self) -> float:
    """Exponent of N_opt(C) ~ C^a: beta / (alpha + beta) (Hoffmann eq. 4)."""
    return self.beta / (self.alpha + self.beta)

  @property
  def b(self) -> float:
    """Exponent of D_opt(C) ~ C^b: alpha / (alpha + beta) (Hoffmann eq. 4)."""
    return self.alpha / (self.alpha + self.beta)

  def predict(self, n, d) -> np.ndarray:
    """Loss predicted at model sizes `n` and token counts `d`."""
    n = np.asarray(n, np.float64)
    d = np.asarray(d, np.float64)
    return self.E + self.A / n**self.alpha + self.B / d**self.beta

  def to_dict(self) -> dict:
    out = dict(self.params, objective=self.objective, converged=self.converged,
               num_converged_starts=self.num_converged_starts,
               num_starts_at_optimum=self.num_starts_at_optimum,
               num_points=self.num_points, a=self.a, b=self.b,
               confidence=self.confidence)
    if self.intervals is not None:
      out["intervals"] = {k: list(v) for k, v in self.intervals.items()}
      out["bootstrap_converged"] = self.bootstrap_converged
    return out


def _to_theta(p):
  """(A, B, E, alpha, beta) -> (a, b, e, alpha, beta)."""
  return np.array([np.log(p[0]), np.log(p[1]), np.log(p[2]), p[3], p[4]])


def _from_theta(t):
  t = np.asarray(t, np.float64)
  return np.concatenate([np.exp(t[..., :3]), t[..., 3:]], axis=-1)


def check_fit_inputs(N, D, loss, *, delta=1e-3, bootstrap=0, seed=0,
                     grid=None, confidence=0.95, bootstrap_starts=8,
                     max_iter=500):
  """Checks the arguments of `fit_chinchilla`; returns (N, D, loss, grid) as float64.

  Raises the ValueError/TypeError that `fit_chinchilla` documents; callers
  (the command line) use it to reject bad input before any work.
  """
  n = validation.as_positive_1d(N, "N")
  d = validation.as_positive_1d(D, "D")
  loss = validation.as_positive_1d(loss, "loss")
  num = validation.check_same_length(N=n, D=d, loss=loss)
  validation.check_enough_points(num, NUM_PARAMS, "fit_chinchilla")
  validation.check_fit_options(delta=delta, bootstrap=bootstrap,
                               confidence=confidence, max_iter=max_iter)
  validation.check_int(seed, "seed")
  validation.check_int(bootstrap_starts, "bootstrap_starts")
  grid = validation.check_grid(hoffmann_grid() if grid is None else grid,
                               NUM_PARAMS)
  validation.check_varies(n, "N", "alpha")
  validation.check_varies(d, "D", "beta")
  return n, d, loss, grid


def _solve(grid, weights, log_n, log_d, log_loss, delta, max_iter,
           per_start_weights=False):
  """Runs every start and returns the BatchedResult as NumPy arrays."""
  shared = tuple(jnp.asarray(v) for v in (log_n, log_d, log_loss)) + (
      jnp.asarray(delta, jnp.float64),)
  w = jnp.asarray(weights)
  # Slots advanced together: about sqrt(starts) balances the cost per loop
  # iteration (proportional to the pool) against the loop's tail, where the
  # slowest starts run with the other slots idle (450 starts: 21 slots take a
  # quarter of the CPU time of 450; 4,500 starts: 67).
  pool = int(np.clip(np.sqrt(len(grid)), 16, 512))
  if per_start_weights:
    res = lbfgs.minimize_many(objective, jnp.asarray(grid), shared, (w,),
                              max_iter=max_iter, gtol=GTOL, ftol=FTOL,
                              pool_size=pool)
  else:
    res = lbfgs.minimize_many(objective, jnp.asarray(grid), (w,) + shared,
                              None, max_iter=max_iter, gtol=GTOL, ftol=FTOL,
                              pool_size=pool)
  return jax.tree.map(np.asarray, res)


def fit_chinchilla(N, D, loss, *, delta: float = 1e-3, bootstrap: int = 0,
                   seed: int = 0, grid: Optional[np.ndarray] = None,
                   confidence: float = 0.95, bootstrap_starts: int = 8,
                   max_iter: int = 500) -> ChinchillaFit:
  """Fits L(N, D) = E + A/N^alpha + B/D^beta; Hoffmann et al. 2022, eq. (10).

  Args:
    N: model sizes (parameters), positive.
    D: training tokens, positive.
    loss: final losses, positive.
    delta: Huber threshold on log-loss residuals.
    bootstrap: number of bootstrap resamples of the runs (an int; 0: no
      intervals).
    seed: seed of the resampling.
    grid: (starts, 5) initial points as (a, b, e, alpha, beta); defaults to
      the 4500-point `hoffmann_grid()`.
    confidence: level of the percentile intervals.
    bootstrap_starts: each resample is refit from the full-data optimum and
      from this many other starts: the best converged starts of the full fit
      that lie in distinct basins; the best refit is kept.
    max_iter: L-BFGS iteration cap per start.

  Returns:
    A `ChinchillaFit`. When the best start did not converge, `converged` is
    False and a RuntimeWarning is issued.

  Raises:
    ValueError/TypeError: non-positive or non-finite inputs, NaN rows,
      mismatched lengths, 5 or fewer runs, N or D with fewer than 3 distinct
      values (alpha or beta not identifiable), an empty or malformed `grid`,
      or a bad `delta`, `bootstrap` (a count: booleans are a TypeError),
      `confidence`, `max_iter`, `seed` or `bootstrap_starts`.
  """
  n, d, loss, grid = check_fit_inputs(
      N, D, loss, delta=delta, bootstrap=bootstrap, seed=seed, grid=grid,
      confidence=confidence, bootstrap_starts=bootstrap_starts,
      max_iter=max_iter)

  with jax.enable_x64(True):
    log_n, log_d, log_loss = np.log(n), np.log(d), np.log(loss)
    weights = np.ones_like(log_n)
    res = _solve(grid, weights, log_n, log_d, log_loss, delta, max_iter)
    i, converged = lbfgs.best_start(res)
    best_value = float(res.value[i])
    conv = res.converged & np.isfinite(res.value)
    at_opt = conv & (np.abs(res.value - best_value)
                     <= 1e-6 * max(abs(best_value), 1e-12))
    params = _from_theta(res.x[i])
    if not converged:
      warnings.warn("fit_chinchilla: the best start did not converge "
                    f"(gradient norm {res.grad_norm[i]:.2e} after "
                    f"{res.num_iter[i]} iterations, max_iter={max_iter}); "
                    "the result is flagged converged=False; raise max_iter.",
                    RuntimeWarning, stacklevel=2)
    intervals = boot_params = boot_conv = None
    if bootstrap:
      starts = _distinct_starts(res, bootstrap_starts)
      boot_params, boot_ok = _bootstrap(
          log_n, log_d, log_loss, delta, res.x[i], starts, bootstrap, seed,
          max_iter)
      boot_conv = float(boot_ok.mean())
      boot_params = np.where(boot_ok[:, None], boot_params, np.nan)
      ok = boot_params[boot_ok]
      if len(ok) < 2:
        raise RuntimeError("fit_chinchilla: fewer than two bootstrap refits "
                           "converged; no intervals can be given.")
      intervals = bootstrap_lib.percentile_intervals(
          ok, PARAM_NAMES, confidence)
      intervals["a"] = bootstrap_lib.percentile_interval(
          ok[:, 4] / (ok[:, 3] + ok[:, 4]), confidence)
      intervals["b"] = bootstrap_lib.percentile_interval(
          ok[:, 3] / (ok[:, 3] + ok[:, 4]), confidence)
  return ChinchillaFit(
      *[float(p) for p in params], objective=best_value * delta,
      converged=converged, num_converged_starts=int(conv.sum()),
      num_starts_at_optimum=int(at_opt.sum()), num_points=len(n),
      intervals=intervals, bootstrap_params=boot_params,
      bootstrap_converged=boot_conv, confidence=confidence)


def _distinct_starts(res, k):
  """The k best converged end points that differ from each other by > 1e-3."""
  order = np.argsort(np.where(res.converged, res.value, np.inf))
  chosen = []
  for j in order:
    if not res.converged[j] or len(chosen) >= k:
      break
    if all(np.max(np.abs(res.x[j] - res.x[c])) > 1e-3 for c in chosen):
      chosen.append(j)
  return res.x[np.asarray(chosen, dtype=int)] if chosen else res.x[:0]


def _bootstrap(log_n, log_d, log_loss, delta, theta_hat, starts, num, seed,
               max_iter):
  """Refits on `num` resamples; returns (params (num, 5), converged (num,)).

  Every resample is refit from the full-data optimum and from each of
  `starts`; all (resample, start) pairs run in one `minimize_many` call and
  the best converged refit of each resample is kept.
  """
  weights = bootstrap_lib.resample_weights(seed, len(log_n), num)
  inits = np.concatenate([theta_hat[None], starts], axis=0)
  k = len(inits)
  x0s = np.tile(inits, (num, 1))
  w = np.repeat(weights, k, axis=0)
  r = _solve(x0s, w, log_n, log_d, log_loss, delta, max_iter,
             per_start_weights=True)
  value = np.where(r.converged, r.value, np.inf).reshape(num, k)
  j = np.argmin(value, axis=1)
  x = r.x.reshape(num, k, NUM_PARAMS)[np.arange(num), j]
  ok = np.isfinite(value[np.arange(num), j])
  return _from_theta(x), ok
