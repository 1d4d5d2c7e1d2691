"""Chinchilla approach 1: the envelope of training curves.

Each model size contributes a training curve (loss against tokens seen). For
each compute budget C = 6 N D the envelope takes, over model sizes, the lowest
loss reached with that compute (curves interpolated linearly in log D); the
minimising N and D = C / (6 N) give N_opt(C), D_opt(C), and least squares in
log-log space (`kernels.slopes.loglog_fit`) give the exponents a and b with
their 95% intervals (Hoffmann et al. 2022, Sec. 3.1).
"""
import dataclasses
import math

import numpy as np

from kernels import slopes
from kernels import validation


@dataclasses.dataclass(frozen=True)
class EnvelopeFit:
  """Result of approach 1 (and 2): the frontier and its power-law exponents.

  N_opt ~ N0 * C^a and D_opt ~ D0 * C^b; `a_interval` and `b_interval` are the
  95% intervals of the least-squares slopes (NaN with two budgets).
  """
  C: np.ndarray
  N_opt: np.ndarray
  D_opt: np.ndarray
  loss_opt: np.ndarray
  a: float
  b: float
  N0: float
  D0: float
  a_interval: tuple = (math.nan, math.nan)
  b_interval: tuple = (math.nan, math.nan)

  def to_dict(self) -> dict:
    return dict(a=self.a, b=self.b, N0=self.N0, D0=self.D0,
                a_interval=list(self.a_interval), b_interval=list(self.b_interval),
                C=self.C.tolist(), N_opt=self.N_opt.tolist(),
                D_opt=self.D_opt.tolist(), loss_opt=self.loss_opt.tolist())


def envelope_fit(C, N_opt, D_opt, loss_opt) -> "EnvelopeFit":
  """The frontier with its exponents: log-log least squares of N_opt and D_opt against C."""
  n_fit = slopes.loglog_fit(C, N_opt)
  d_fit = slopes.loglog_fit(C, D_opt)
  return EnvelopeFit(C=C, N_opt=N_opt, D_opt=D_opt, loss_opt=loss_opt, a=n_fit.slope,
                     b=d_fit.slope, N0=math.exp(n_fit.intercept), D0=math.exp(d_fit.intercept),
                     a_interval=(n_fit.low, n_fit.high), b_interval=(d_fit.low, d_fit.high))


def approach1(N, D, loss, *, num_budgets: int = 30) -> EnvelopeFit:
  """Envelope of training curves; Hoffmann et al. 2022, Sec. 3.1 (Fig. 2).

  Args:
    N: model size of each point (points of one curve share N).
    D: tokens seen at each point.
    loss: loss at each point.
    num_budgets: number of log-spaced budgets spanning the range where at
      least two curves reach the budget.

  Raises:
    ValueError/TypeError: bad inputs, `num_budgets` not an int >= 3, or
      fewer than two curves with 2+ points each.
  """
  n = validation.as_positive_1d(N, "N")
  d = validation.as_positive_1d(D, "D")
  loss = validation.as_positive_1d(loss, "loss")
  validation.check_same_length(N=n, D=d, loss=loss)
  validation.check_int(num_budgets, "num_budgets", minimum=3)
  curves = []
  for size in np.unique(n):
    m = n == size
    order = np.argsort(d[m])
    if m.sum() >= 2:
      curves.append((size, np.log(d[m][order]), loss[m][order]))
  if len(curves) < 2:
    raise ValueError("approach1 needs at least two training curves (model "
                     "sizes) with two or more points each.")
  c_lo = min(6 * s * np.exp(ld[0]) for s, ld, _ in curves)
  c_hi = max(6 * s * np.exp(ld[-1]) for s, ld, _ in curves)
  budgets = np.geomspace(c_lo, c_hi, num_budgets + 2)[1:-1]
  rows = []
  for c in budgets:
    best = (np.inf, None)
    reached = 0
    for size, ld, ls in curves:
      target = np.log(c / (6 * size))
      if ld[0] <= target <= ld[-1]:
        reached += 1
        value = np.interp(target, ld, ls)
        if value < best[0]:
          best = (value, size)
    if reached >= 2 and best[1] is not None:
      rows.append((c, best[1], c / (6 * best[1]), best[0]))
  if len(rows) < 3:
    raise ValueError("approach1: fewer than three budgets are reached by two "
                     "or more curves; the curves do not overlap enough.")
  return envelope_fit(*map(np.asarray, zip(*rows)))
