"""Residual networks with depth-muP branches and their infinite-depth limit."""
import dataclasses
from typing import Sequence

import numpy as np

from dmft import network
from dmft import results
from kernels import validation as val


def solve_residual(X, y, *, n_blocks, activation="relu", gamma0=1.0, lr=1.0,
                   steps=50, n_samples=2048, seed=0, branch_exponent=0.5,
                   **kwargs) -> results.DMFTResult:
  """DMFT of a residual network with branch multiplier n_blocks^-exponent.

  Bordelon et al. (2023), "Depthwise Hyperparameter Transfer in Residual
  Networks", Eq. (5): h^{l+1} = h^l + L^-1/2 W^l phi(h^l) / sqrt(N), in the
  joint infinite-width limit at finite depth.

  Args:
    X, y: training data.
    n_blocks: residual blocks L (the network has an input embedding, L blocks
      and a readout).
    branch_exponent: branch multiplier n_blocks^-branch_exponent (0.5 is
      depth-muP).
    **kwargs: see `dmft.solve_deep`.

  Returns:
    A `DMFTResult` with n_blocks + 1 layers of kernels.
  """
  from dmft import solver as solve_lib  # pylint: disable=g-import-not-at-top
  n_blocks = val.check_int(n_blocks, "n_blocks", minimum=1)
  branch_exponent = val.check_positive_number(branch_exponent, "branch_exponent",
                                       allow_zero=True)
  shape = {k: val.check_positive_number(kwargs.pop(k), k)
           for k in ("W_std", "input_std", "readout_std") if k in kwargs}
  net = network.build(1, depth=n_blocks + 1, activation=activation,
                      gamma0=val.check_positive_number(gamma0, "gamma0"), residual=True,
                      branch_exponent=branch_exponent, **shape)
  return solve_lib.solve(net, X, y, lr=lr, steps=steps, n_samples=n_samples, seed=seed,
                         **kwargs)


@dataclasses.dataclass(frozen=True)
class DepthConvergence:
  """Approach of finite-depth residual DMFT to its infinite-depth limit.

  Attributes:
    n_blocks: depths solved.
    loss: (depths, steps+1) loss curves.
    distance: max_t |loss_L(t) - loss_inf(t)| for each depth.
    exponent: fitted exponent of distance ~ L^exponent (with stderr).
    loss_infinite: (steps+1,) Richardson-extrapolated infinite-depth loss.
    exponent_points: how many depth differences the exponent was fitted to (its
      interval: `kernels.slopes.interval_text`).
  """
  n_blocks: np.ndarray
  loss: np.ndarray
  distance: np.ndarray
  exponent: tuple
  loss_infinite: np.ndarray
  exponent_points: int = 0

  def as_dict(self):
    return dict(n_blocks=self.n_blocks.tolist(), distance=self.distance.tolist(),
                exponent={"slope": self.exponent[0],
                          "stderr": self.exponent[1], "points": self.exponent_points},
                final_loss=self.loss[:, -1].tolist(),
                final_loss_infinite=float(self.loss_infinite[-1]))


def difference_exponent(lo, hi, diffs, max_alpha: float = 20.0):
  """alpha (and its standard error) of d_i = c lo_i^-alpha (1 - (lo_i / hi_i)^alpha), the
  differences |loss(lo_i) - loss(hi_i)| of loss(L) = loss_inf + c L^-alpha (Bordelon et al.
  2023, Sec. 4), fitted in log space with one c.

  For depths in a constant ratio the last factor is the same for every i and this is the
  log-log slope of d against L; for other depths (2, 3, 4, 5, ...) that slope is not
  alpha (it was -1.49 for a true -0.7). The standard error is the Gauss-Newton one
  (NaN for two differences: no degrees of freedom left).
  """
  from scipy import optimize  # pylint: disable=g-import-not-at-top  (0.3 s to import)
  lo, hi, d = (np.asarray(v, dtype=float) for v in (lo, hi, diffs))
  lx, ly, lr = np.log(lo), np.log(d), np.log(lo / hi)  # lr < 0

  def resid(a):
    z = ly + a * lx - np.log(np.abs(np.expm1(a * lr)))  # = log |c| for every i at the true alpha
    return z - z.mean()

  half = np.geomspace(1e-3, max_alpha, 400)  # alpha < 0: differences that grow with depth
  grid = np.concatenate([-half[::-1], half])
  rss = np.array([r @ r for r in map(resid, grid)])
  i = int(np.argmin(rss))
  lo_a, hi_a = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
  if lo_a < 0 < hi_a:  # (never across alpha = 0, where the model is degenerate)
    lo_a, hi_a = (lo_a, -1e-3) if grid[i] < 0 else (1e-3, hi_a)
  alpha = float(optimize.minimize_scalar(lambda a: resid(a) @ resid(a), bounds=(lo_a, hi_a),
                                         method="bounded", options=dict(xatol=1e-10)).x)
  n = d.size
  if n <= 2:
    return alpha, float("nan")
  ra = np.exp(alpha * lr)
  jac = np.stack([np.ones(n), -lx + ra * lr / (1 - ra)], axis=1)  # d model / (log c, alpha)
  r = resid(alpha)
  cov = (r @ r) / (n - 2) * np.linalg.inv(jac.T @ jac)
  return alpha, float(np.sqrt(cov[1, 1]))


def infinite_depth_limit(X, y, *, n_blocks: Sequence[int] = (1, 2, 4, 8),
                         **kwargs) -> DepthConvergence:
  """Solves at several depths and extrapolates to infinite depth.

  Bordelon et al. (2023), Sec. 4: with 1/sqrt(L) branches the DMFT has a
  limit as L -> infinity; finite-depth corrections are fitted as
  loss_L(t) = loss_inf(t) + c(t) L^-alpha with one alpha for all t.

  Args:
    X, y: training data.
    n_blocks: increasing depths (>= 3 of them).
    **kwargs: passed to `solve_residual` (same seed for all depths, so that
      Monte Carlo noise is shared).

  Returns:
    A `DepthConvergence`.
  """
  depths = np.asarray(sorted(int(d) for d in n_blocks))
  if depths.size < 3:
    raise ValueError(f"n_blocks needs at least 3 depths, got {list(n_blocks)}")
  losses = np.stack([solve_residual(X, y, n_blocks=int(d), **kwargs).loss
                     for d in depths])
  diffs = np.max(np.abs(np.diff(losses, axis=0)), axis=1)
  good = diffs > 0
  if good.sum() >= 2:
    alpha, se = difference_exponent(depths[:-1][good], depths[1:][good], diffs[good])
    slope = -alpha
  else:
    slope, se = float("nan"), float("nan")
  alpha = -slope
  # Richardson extrapolation from the two deepest solutions.
  l1, l2 = depths[-2], depths[-1]
  if np.isfinite(alpha) and alpha > 0:
    r = (l1 / l2) ** alpha
    loss_inf = (losses[-1] - r * losses[-2]) / (1 - r)
  else:
    loss_inf = losses[-1]
  distance = np.max(np.abs(losses - loss_inf[None]), axis=1)
  return DepthConvergence(n_blocks=depths, loss=losses, distance=distance,
                          exponent=(float(slope), float(se)),
                          loss_infinite=loss_inf, exponent_points=int(good.sum()))
