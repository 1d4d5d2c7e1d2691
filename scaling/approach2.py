"""Chinchilla approach 2: IsoFLOP profiles.

For each compute budget, the final losses of models of different sizes
trained with that budget are fitted by a parabola in log N; its vertex is
N_opt(C), and D_opt(C) = C / (6 N_opt). Least squares in log-log space then
give N_opt ~ C^a and D_opt ~ C^b (Hoffmann et al. 2022, Sec. 3.2).
"""
import numpy as np

from kernels import validation
from scaling.approach1 import EnvelopeFit
from scaling.approach1 import envelope_fit


def isoflop_vertex(N, loss):
  """Vertex (N_opt, loss_opt) of the parabola loss = c0 + c1 u + c2 u^2, u = log N.

  Raises:
    ValueError: if N has fewer than 3 distinct values, the parabola opens
      downwards or the vertex is outside the sampled sizes (the profile does
      not bracket the optimum).
  """
  validation.check_varies(np.asarray(N), "N", "the parabola's vertex")
  u = np.log(N)
  c2, c1, c0 = np.polyfit(u, loss, 2)
  if c2 <= 0:
    raise ValueError("isoflop profile is not convex in log N; its optimum is "
                     "not bracketed.")
  u_star = -c1 / (2 * c2)
  if not u.min() <= u_star <= u.max():
    raise ValueError(f"isoflop optimum N={np.exp(u_star):.3g} lies outside "
                     f"the sampled sizes [{N.min():.3g}, {N.max():.3g}].")
  return float(np.exp(u_star)), float(c0 + c1 * u_star + c2 * u_star**2)


def approach2(N, C, loss, *, rtol: float = 0.05) -> EnvelopeFit:
  """IsoFLOP parabolas; Hoffmann et al. 2022, Sec. 3.2 (Fig. 3).

  Args:
    N: model sizes.
    C: compute of each run (FLOP); runs whose C agree within `rtol` form one
      IsoFLOP profile.
    loss: final losses.
    rtol: relative tolerance for grouping runs into budgets.

  Raises:
    ValueError: bad inputs (`rtol` outside [0, 1) included), or fewer than
      two budgets with 3+ runs whose parabola brackets its optimum.
  """
  n = validation.as_positive_1d(N, "N")
  c = validation.as_positive_1d(C, "C")
  loss = validation.as_positive_1d(loss, "loss")
  validation.check_same_length(N=n, C=c, loss=loss)
  if isinstance(rtol, bool) or not (np.isscalar(rtol) and np.isfinite(rtol)
                                    and 0 <= rtol < 1):
    raise ValueError(f"`rtol` must be a number in [0, 1), got {rtol!r}.")
  order = np.argsort(c)
  groups, current = [], [order[0]]
  for i in order[1:]:
    if c[i] <= c[current[0]] * (1 + rtol):
      current.append(i)
    else:
      groups.append(current)
      current = [i]
  groups.append(current)
  rows, skipped = [], 0
  for g in groups:
    g = np.asarray(g)
    if len(g) < 3:
      skipped += 1
      continue
    try:
      n_opt, l_opt = isoflop_vertex(n[g], loss[g])
    except ValueError:
      skipped += 1
      continue
    budget = float(np.exp(np.mean(np.log(c[g]))))
    rows.append((budget, n_opt, budget / (6 * n_opt), l_opt))
  if len(rows) < 2:
    raise ValueError(f"approach2 needs two or more IsoFLOP profiles with 3+ "
                     f"runs bracketing their optimum; got {len(rows)} "
                     f"({skipped} skipped).")
  return envelope_fit(*map(np.asarray, zip(*rows)))
