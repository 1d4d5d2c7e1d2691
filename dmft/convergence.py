"""Convergence of finite-width ensembles to the DMFT: distances and exponents."""
import dataclasses
from typing import Dict, Sequence

import numpy as np

from dmft import ensembles as ens_lib
from dmft import results
from kernels import slopes


@dataclasses.dataclass(frozen=True)
class WidthConvergence:
  """Distances between finite-width ensembles and the DMFT, per width.

  Per width N (arrays aligned with `widths`):
    loss_bias: time-average |mean_seeds loss_N(t) - loss_DMFT(t)| (~ 1/N).
    loss_spread: time-average std over seeds of loss_N(t) (~ 1/sqrt(N)).
    f_msd: mean over seeds and time of |f_N(t) - f_DMFT(t)|^2 / P (~ 1/N).
    ntk_bias: |mean_seeds NTK_N(T) - NTK_DMFT(T)|_F / |NTK_DMFT(T)|_F.
    ntk_spread: mean over seeds |NTK_N(T) - mean NTK_N(T)|_F / |NTK_DMFT|_F.
  exponents: fitted power-law exponents {name: (slope, stderr)}.
  """
  widths: np.ndarray
  loss_bias: np.ndarray
  loss_spread: np.ndarray
  f_msd: np.ndarray
  ntk_bias: np.ndarray
  ntk_spread: np.ndarray
  exponents: Dict[str, tuple]

  def as_dict(self):
    out = {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(
        self).items() if k != "exponents"}
    out["exponents"] = {k: {"slope": s, "stderr": e}
                        for k, (s, e) in self.exponents.items()}
    return out

  def report(self) -> str:
    lines = ["width  loss_bias   loss_spread  f_msd       ntk_bias    "
             "ntk_spread"]
    for i, n in enumerate(self.widths):
      lines.append(f"{int(n):5d}  {self.loss_bias[i]:.3e}   "
                   f"{self.loss_spread[i]:.3e}    {self.f_msd[i]:.3e}   "
                   f"{self.ntk_bias[i]:.3e}   {self.ntk_spread[i]:.3e}")
    lines.append("fitted exponents (theory: bias -1, spread -1/2):")
    for k, (s, e) in self.exponents.items():
      lines.append(f"  {k:12s} {slopes.interval_text(s, e, len(self.widths))}")
    return "\n".join(lines)


def measure(ensembles: Sequence[ens_lib.EnsembleResult],
            theory: results.DMFTResult) -> WidthConvergence:
  """Distances of each width's ensemble to the DMFT and fitted exponents.

  Bordelon and Pehlevan (2023), "Dynamics of Finite Width Kernel and
  Prediction Fluctuations in Mean Field Neural Networks", Eq. (3): bias
  O(1/N), fluctuations O(1/sqrt(N)).
  """
  widths, bias, spread, msd, kb, ks = [], [], [], [], [], []
  ntk_ref = np.asarray(theory.ntk[-1])
  ref_norm = np.linalg.norm(ntk_ref)
  for e in ensembles:
    widths.append(e.width)
    mean_loss = e.loss.mean(0)
    bias.append(np.mean(np.abs(mean_loss - theory.loss)))
    spread.append(np.mean(e.loss.std(0, ddof=1)))
    msd.append(np.mean((e.f_train - theory.f_train[None]) ** 2))
    if e.ntk_final is not None:
      mean_k = e.ntk_final.mean(0)
      kb.append(np.linalg.norm(mean_k - ntk_ref) / ref_norm)
      ks.append(np.mean(np.linalg.norm(e.ntk_final - mean_k, axis=(1, 2)))
                / ref_norm)
    else:
      kb.append(np.nan)
      ks.append(np.nan)
  widths = np.asarray(widths)
  arrays = dict(loss_bias=np.asarray(bias), loss_spread=np.asarray(spread),
                f_msd=np.asarray(msd), ntk_bias=np.asarray(kb),
                ntk_spread=np.asarray(ks))
  exponents = {}
  if len(widths) >= 2:
    for k, v in arrays.items():
      if np.all(np.isfinite(v)) and np.all(v > 0):
        fit = slopes.loglog_fit(widths, v)
        exponents[k] = (fit.slope, fit.stderr)
  return WidthConvergence(widths=widths, exponents=exponents, **arrays)


@dataclasses.dataclass(frozen=True)
class SplitBias:
  """The finite-width bias of the loss from split pairs (`ensembles.train_split_pairs`).

  Per width N (arrays aligned with `widths`):
    difference: mean over pairs and time of (loss_a + loss_b) / 2 - loss_union,
      an estimate of bias(N) - bias(2N) (bias(N) / 2 when bias ~ 1/N).
    stderr: its standard error over pairs.
  exponent: (slope, stderr) of the power-law fit in N (theory: -1).
  """
  widths: np.ndarray
  difference: np.ndarray
  stderr: np.ndarray
  exponent: tuple

  def as_dict(self):
    return dict(widths=self.widths.tolist(), difference=self.difference.tolist(),
                stderr=self.stderr.tolist(),
                exponent=dict(slope=self.exponent[0], stderr=self.exponent[1]))

  def report(self) -> str:
    lines = ["width  bias(N)-bias(2N)  stderr"]
    for n, d, e in zip(self.widths, self.difference, self.stderr):
      lines.append(f"{int(n):5d}  {d:+.3e}        {e:.1e}")
    lines.append("fitted exponent (theory -1): " + slopes.interval_text(
        self.exponent[0], self.exponent[1], len(self.widths)))
    return "\n".join(lines)


def measure_split_bias(pairs: Sequence[ens_lib.SplitPairs]) -> SplitBias:
  """Bias differences bias(N) - bias(2N) per width and their exponent in N.

  Bordelon and Pehlevan (2023), Eq. (3): the ensemble-mean loss deviates from the
  DMFT by O(1/N), so the differences fall as N^-1.
  """
  widths = np.asarray([p.width for p in pairs])
  per_pair = [p.difference.mean(axis=1) for p in pairs]
  diff = np.asarray([d.mean() for d in per_pair])
  err = np.asarray([d.std(ddof=1) / np.sqrt(d.size) if d.size > 1 else np.nan
                    for d in per_pair])
  exponent = (np.nan, np.nan)
  if len(widths) >= 2 and np.all(diff > 0):
    fit = slopes.loglog_fit(widths, diff)
    exponent = (fit.slope, fit.stderr)
  return SplitBias(widths=widths, difference=diff, stderr=err, exponent=exponent)


def kernel_alignment(kernel, y):
  """Centred-free kernel-target alignment y^T K y / (|K|_F |y|^2).

  Cristianini et al. (2001), "On Kernel-Target Alignment", Eq. (1) with
  K' = y y^T.
  """
  k = np.asarray(kernel, np.float64)
  y = np.asarray(y, np.float64).reshape(-1)
  return float(y @ k @ y / (np.linalg.norm(k) * (y @ y)))
