"""Compute-optimal allocation of a fitted L(N, D) under C = 6 N D."""
import dataclasses
from typing import Optional

import numpy as np

from scaling import bootstrap as bootstrap_lib


@dataclasses.dataclass(frozen=True)
class Allocation:
  """N_opt(C), D_opt(C) on the given budgets, with optional intervals.

  Attributes:
    C: compute budgets (FLOP).
    N_opt, D_opt: optimal model size and tokens.
    loss_opt: the law's loss at the optimum.
    a, b: exponents of N_opt ~ C^a and D_opt ~ C^b.
    N_interval, D_interval: (2, len(C)) low/high bootstrap bands, or None.
    a_interval: bootstrap interval of a, or None.
  """
  C: np.ndarray
  N_opt: np.ndarray
  D_opt: np.ndarray
  loss_opt: np.ndarray
  a: float
  b: float
  N_interval: Optional[np.ndarray] = None
  D_interval: Optional[np.ndarray] = None
  a_interval: Optional[tuple] = None


def _optimum(A, B, alpha, beta, C):
  """N_opt, D_opt; Hoffmann et al. 2022, eq. (4)."""
  G = (alpha * A / (beta * B))**(1.0 / (alpha + beta))
  a = beta / (alpha + beta)
  b = alpha / (alpha + beta)
  return G * (C / 6.0)**a, (C / 6.0)**b / G


def compute_optimal(fit, C, *, confidence: Optional[float] = None
                    ) -> Allocation:
  """N_opt(C) = G (C/6)^a, D_opt(C) = G^-1 (C/6)^b; Hoffmann et al. 2022, eq. (4).

  Args:
    fit: a `ChinchillaFit` (or any object with A, B, E, alpha, beta).
    C: compute budgets in FLOP, positive.
    confidence: interval level; defaults to the fit's. Bands come from the
      fit's bootstrap refits when it has them.
  """
  C = np.atleast_1d(np.asarray(C, np.float64))
  if C.ndim != 1 or not np.all(np.isfinite(C) & (C > 0)):
    raise ValueError("`C` must be positive finite compute budgets.")
  for k in ("alpha", "beta", "A", "B"):
    if not getattr(fit, k) > 0:
      raise ValueError(f"`fit.{k}` must be positive for an optimum to exist, "
                       f"got {getattr(fit, k)}.")
  n_opt, d_opt = _optimum(fit.A, fit.B, fit.alpha, fit.beta, C)
  loss = fit.E + fit.A / n_opt**fit.alpha + fit.B / d_opt**fit.beta
  a = fit.beta / (fit.alpha + fit.beta)
  out = Allocation(C=C, N_opt=n_opt, D_opt=d_opt, loss_opt=loss, a=a, b=1 - a)
  boots = getattr(fit, "bootstrap_params", None)
  if boots is not None:
    level = confidence or fit.confidence
    boots = boots[np.all(np.isfinite(boots) & (boots[:, [0, 1, 3, 4]].min(
        axis=1, keepdims=True) > 0), axis=1)]
    ns, ds = _optimum(boots[:, 0:1], boots[:, 1:2], boots[:, 3:4],
                      boots[:, 4:5], C[None, :])
    lo = 100 * (1 - level) / 2
    out = dataclasses.replace(
        out,
        N_interval=np.percentile(ns, [lo, 100 - lo], axis=0),
        D_interval=np.percentile(ds, [lo, 100 - lo], axis=0),
        a_interval=bootstrap_lib.percentile_interval(
            boots[:, 4] / (boots[:, 3] + boots[:, 4]), level))
  return out
