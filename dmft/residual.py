"""Residual networks with depth-muP branches and their infinite-depth limit."""
import dataclasses
from typing import Sequence

import numpy as np

from dmft import network
from dmft import results
from kernels import validation as val
from kernels import slopes


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
  # Successive differences loss_L - loss_2L ~ L^-alpha (1 - 2^-alpha).
  diffs = np.max(np.abs(np.diff(losses, axis=0)), axis=1)
  mids = depths[:-1]
  good = diffs > 0
  if good.sum() >= 2:
    fit = slopes.loglog_fit(mids[good], diffs[good])
    slope, se = fit.slope, fit.stderr
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
