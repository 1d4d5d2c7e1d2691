"""Figures of DMFT runs: theory against finite-width networks."""
import matplotlib

import matplotlib.ticker  # pylint: disable=g-import-not-at-top
import numpy as np

from dmft import convergence
from kernels import runs as io
from kernels import slopes


def theory_vs_width(theory, ensembles, path):
  """Loss curves of the DMFT and the ensemble means of each width."""
  fig, ax = io.figure(figsize=(5, 3.6))
  cmap = matplotlib.colormaps["viridis"]
  for i, e in enumerate(ensembles):
    m, s = e.loss.mean(0), e.loss.std(0)
    t = np.arange(m.size)
    c = cmap(i / max(len(ensembles) - 1, 1))
    ax.plot(t, m, color=c, lw=1, label=f"N={e.width}")
    ax.fill_between(t, m - s, m + s, color=c, alpha=0.15)
  ax.plot(np.arange(len(theory["loss"])), theory["loss"], "k--", lw=2,
          label="DMFT")
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("train loss")
  ax.legend(fontsize=7)
  io.save_figure(fig, path)


def _width_ticks(ax, widths):
  """One plain label per measured width on a log axis (no crowded minor labels)."""
  ws = np.unique(np.asarray(widths, np.int64))
  step = int(np.ceil(len(ws) / 6))  # at most about six labels
  ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ws[::step]))
  ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def width_scaling(conv, path, split=None):
  """Distances to the DMFT against width with fitted power laws.

  `split` (a `convergence.SplitBias`) adds the split-pair bias differences.
  """
  fig, ax = io.figure(figsize=(5, 3.6))
  for name, marker in (("loss_spread", "o"), ("f_msd", "s"),
                       ("loss_bias", "^"), ("ntk_spread", "d")):
    v = getattr(conv, name)
    ax.loglog(conv.widths, v, marker, label=name)
    if name in conv.exponents:
      fit = slopes.loglog_fit(conv.widths, v)
      s = fit.slope
      ax.loglog(conv.widths, fit.predict(conv.widths), "-", lw=0.8,
                label=f"  slope {s:+.2f}")
  if split is not None and np.all(split.difference > 0):
    ax.errorbar(split.widths, split.difference, yerr=split.stderr, fmt="v",
                ms=4, label="bias(N) - bias(2N), split pairs")
    fit = slopes.loglog_fit(split.widths, split.difference)
    s = fit.slope
    ax.loglog(split.widths, fit.predict(split.widths), "-", lw=0.8,
              label=f"  slope {s:+.2f}")
  ax.set_xlabel("width N (hidden units)")
  ax.set_ylabel("distance to the DMFT (relative)")
  _width_ticks(ax, conv.widths)
  ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
  io.save_figure(fig, path)


def lazy_to_rich(sweep, y, path):
  """Final-NTK alignment with y y^T and test loss against gamma0."""
  gammas = sorted(sweep)
  align = [convergence.kernel_alignment(sweep[g]["ntk"][-1], y)
           for g in gammas]
  fig, axes = io.figure(1, 2, figsize=(9, 3.4), layout="constrained")
  axes[0].semilogx(gammas, align, "o-")
  axes[0].set_xlabel("richness gamma0")
  axes[0].set_ylabel("alignment of final NTK with yy^T")
  if all("test_loss" in sweep[g] for g in gammas):
    for g in gammas:
      axes[1].plot(sweep[g]["test_loss"], label=f"gamma0={g:g}")
    axes[1].set_xlabel("gradient-descent step")
    axes[1].set_ylabel("test loss, mean (f - y)^2 / 2")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
  io.save_figure(fig, path)
