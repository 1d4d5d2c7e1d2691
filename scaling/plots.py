"""Figures for scaling-law fits: data with the fitted law, and the frontier."""

import numpy as np

from kernels import runs as runs_lib


def plot_fit(fit, N, D, loss, path=None):
  """Loss against compute C = 6ND, coloured by model size, with the law's curves per size."""
  N, D, loss = map(np.asarray, (N, D, loss))
  fig, ax = runs_lib.figure(figsize=(6, 4))
  sc = ax.scatter(6 * N * D, loss, c=np.log10(N), s=12, cmap="viridis")
  for n in np.geomspace(N.min(), N.max(), 6):
    d = np.geomspace(D.min(), D.max(), 100)
    ax.plot(6 * n * d, fit.predict(n, d), color=sc.cmap(sc.norm(np.log10(n))),
            lw=1)
  ax.set(xscale="log", yscale="log", xlabel="compute C = 6ND (FLOP)",
         ylabel="loss", title=f"E={fit.E:.3f} A={fit.A:.4g} B={fit.B:.4g} "
         f"alpha={fit.alpha:.3f} beta={fit.beta:.3f}")
  fig.colorbar(sc, ax=ax, label="log10 N")
  fig.tight_layout()
  return _finish(fig, path)


def plot_surface(fit, N, D, loss, path=None):
  """Contours of the fitted L(N, D) with the runs and the compute-optimal line."""
  N, D, loss = map(np.asarray, (N, D, loss))
  n = np.geomspace(N.min() / 2, N.max() * 2, 120)
  d = np.geomspace(D.min() / 2, D.max() * 2, 120)
  nn, dd = np.meshgrid(n, d)
  fig, ax = runs_lib.figure(figsize=(6, 4.5))
  cs = ax.contourf(dd, nn, np.log(fit.predict(nn, dd)), levels=30,
                   cmap="magma")
  ax.scatter(D, N, c="w", s=6, edgecolors="k", linewidths=0.3)
  g = (fit.alpha * fit.A / (fit.beta * fit.B))**(1 / (fit.alpha + fit.beta))
  c = 6 * nn.min() * dd.min() * np.geomspace(1, 1e8, 50)
  ax.plot((c / 6)**fit.b / g, g * (c / 6)**fit.a, "c--", label="N_opt(C)")
  ax.set(xscale="log", yscale="log", xlabel="tokens D", ylabel="parameters N",
         xlim=(d[0], d[-1]), ylim=(n[0], n[-1]))
  ax.legend()
  fig.colorbar(cs, ax=ax, label="log fitted loss")
  fig.tight_layout()
  return _finish(fig, path)


def plot_frontier(allocation, path=None, label="approach 3"):
  """N_opt(C) and D_opt(C) with bootstrap bands when present."""
  fig, ax = runs_lib.figure(figsize=(6, 4))
  for name, y, band in (("N_opt", allocation.N_opt, allocation.N_interval),
                        ("D_opt", allocation.D_opt, allocation.D_interval)):
    (line,) = ax.plot(allocation.C, y, label=f"{name} ({label})")
    if band is not None:
      ax.fill_between(allocation.C, band[0], band[1], alpha=0.25,
                      color=line.get_color())
  ax.set(xscale="log", yscale="log", xlabel="compute C (FLOP)",
         title=f"N_opt ~ C^{allocation.a:.3f}, D_opt ~ C^{allocation.b:.3f}")
  ax.legend()
  fig.tight_layout()
  return _finish(fig, path)


def _finish(fig, path):
  if path is None:
    return fig
  fig.savefig(path, dpi=120)
  return path

