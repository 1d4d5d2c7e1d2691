r"""Learning-rate transfer in width (SP against muP) and in depth (muP against depth-muP).

  python -m lm.transfer --axis=width --out=runs/lm_transfer_width
  python -m lm.transfer --axis=depth --out=runs/lm_transfer_depth

For each parameterization and size, trains a factor-of-2 learning-rate grid over
several seeds (one vmapped program per size, `lm.sweep.train_grid`) and reports
the optimal rate per size (lowest held-out loss, mean over seeds) and its drift in
grid steps between sizes. muP should hold the optimum within one grid step in width
(Yang et al. 2022, "Tensor Programs V", Fig. 1) and depth-muP in depth (Bordelon et
al. 2023, Fig. 1; Yang et al. 2023, "Tensor Programs VI"); SP in width and plain
muP in depth drift. Also checks that, under muP, wider is better at every
evaluation step (at each width's optimal rate). Writes config.json, metrics.jsonl
(one record per size, resumable), transfer.png, summary.md.
"""
from __future__ import annotations

import os

import numpy as np

from kernels import runs as io
from lm import sweep
from lm import train

AXES = ("width", "depth")


def jobs(cfg):
  """key -> job(device) for every (parameterization, size) of the sweep."""
  lrs = [cfg.lr_base * 2.0 ** k for k in range(cfg.lr_min_exp, cfg.lr_max_exp + 1)]
  out = {}
  for p in cfg.parameterizations:
    for size in cfg.sizes:
      c = cfg.train.copy_and_resolve_references()
      c.model.parameterization = p
      setattr(c.model, cfg.axis, size)
      train.validate(c)

      def job(device, c=c, p=p, size=size):
        r = sweep.train_grid(c, lrs, list(range(cfg.seeds)), device=device)
        return dict(sweep.as_record(r), parameterization=p, size=size)
      out[f"{p}_{cfg.axis}{size}"] = job
  return out


def analyse(cfg, records) -> dict:
  """Optimum per size, drift in grid steps, and 'wider is better' per parameterization."""
  report = {}
  for p in cfg.parameterizations:
    recs = [sweep.from_record(records[f"{p}_{cfg.axis}{s}"]) for s in cfg.sizes]
    idx = [sweep.optimum_index(r["eval_loss"][-1]) for r in recs]
    lrs = recs[0]["lrs"]
    opt_lr = [lrs[i] if i >= 0 else None for i in idx]
    valid = [i for i in idx if i >= 0]
    drift = (max(valid) - min(valid)) if valid else None
    edge = any(i in (0, len(lrs) - 1) for i in valid)
    # at each evaluation step: best loss over the grid (mean over seeds) per size
    best = np.array([[np.min(np.where(np.isfinite(e), e, np.inf).mean(-1)) for e in r["eval_loss"]]
                     for r in recs])  # (sizes, n_eval)
    monotone = bool(np.all(np.diff(best, axis=0) < 0))
    report[p] = dict(optimum_lr=opt_lr, optimum_index=idx, drift_steps=drift,
                     optimum_at_grid_edge=edge, best_loss=best[:, -1].tolist(),
                     larger_is_better_every_eval=monotone)
  return report


def check(cfg):
  """Raises ValueError naming the first bad config field (before any work)."""
  if cfg.axis not in AXES:
    raise ValueError(f"config.axis (--axis) must be one of {AXES}, got {cfg.axis!r}.")
  if len(cfg.sizes) < 2 or any(not isinstance(s, int) or s < 1 for s in cfg.sizes):
    raise ValueError(f"config.sizes needs at least two positive {cfg.axis}s, got "
                     f"{list(cfg.sizes)}.")
  if cfg.lr_max_exp <= cfg.lr_min_exp:
    raise ValueError("config.lr_max_exp must exceed config.lr_min_exp.")
  if not isinstance(cfg.seeds, int) or cfg.seeds < 1:
    raise ValueError(f"config.seeds must be a positive integer, got {cfg.seeds!r}.")
  jobs(cfg)  # validates every size's training config


def run(cfg, out):
  check(cfg)
  rd = sweep.open_run(out, cfg, extendable=("sizes",))
  records = sweep.run_jobs(jobs(cfg), rd, desc=f"lm.transfer ({cfg.axis})")
  report = analyse(cfg, records)
  rd.append(dict(key="report", **report))
  _plot(cfg, records, os.path.join(out, "transfer.png"))
  lines = [f"# lm.transfer along {cfg.axis}", "",
           f"{cfg.axis}s {list(cfg.sizes)}; learning rates {cfg.lr_base:g} x 2^k, k = "
           f"{cfg.lr_min_exp}..{cfg.lr_max_exp}; {cfg.seeds} seeds; {cfg.train.steps} "
           f"{cfg.train.optimizer} steps of {cfg.train.batch_size} x {cfg.train.model.seq_len} "
           "tokens; held-out loss.", "",
           f"| parameterization | optimal lr per {cfg.axis} | drift (grid steps) | "
           f"best loss per {cfg.axis} | larger is better at every eval |", "|---|---|---|---|---|"]
  for p, r in report.items():
    lines.append(f"| {p} | {', '.join('diverged' if x is None else f'{x:.3g}' for x in r['optimum_lr'])} "
                 f"| {r['drift_steps']}{' (optimum at grid edge)' if r['optimum_at_grid_edge'] else ''} "
                 f"| {', '.join(f'{x:.4f}' for x in r['best_loss'])} | {r['larger_is_better_every_eval']} |")
    print(f"lm.transfer: {p} along {cfg.axis}: optimal lr {r['optimum_lr']}, drift "
          f"{r['drift_steps']} grid steps; larger is better at every eval: "
          f"{r['larger_is_better_every_eval']}")
  rd.write_text("summary.md", "\n".join(lines) + "\n")
  return report


def _plot(cfg, records, path):
  ps = list(cfg.parameterizations)
  fig, axes = io.figure(1, len(ps), figsize=(4.5 * len(ps), 3.6), squeeze=False, sharey=True)
  for ax, p in zip(axes[0], ps):
    for s in cfg.sizes:
      r = sweep.from_record(records[f"{p}_{cfg.axis}{s}"])
      e = r["eval_loss"][-1]
      m = np.where(np.isfinite(e), e, np.nan).mean(-1)
      ax.plot(r["lrs"], m, "o-", ms=3, label=f"{cfg.axis} {s}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("base learning rate")
    ax.set_title(p)
  axes[0, 0].set_ylabel("held-out loss")
  axes[0, -1].legend(fontsize=7)
  io.save_figure(fig, path)


if __name__ == "__main__":
  import sys  # pylint: disable=g-import-not-at-top
  from kernels import cli  # pylint: disable=g-import-not-at-top
  from lm import program  # pylint: disable=g-import-not-at-top
  # --axis=width|depth picks the shipped config (lm/configs/transfer_<axis>.py)
  axis = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--axis=")), "width")
  if axis not in AXES:
    cli.fail("lm.transfer", f"--axis must be one of {AXES}, got {axis!r}")
  sys.argv = [a for a in sys.argv if not a.startswith("--axis=")]
  program.main("lm.transfer", f"transfer_{axis}.py", f"lm_transfer_{axis}", check, run,
               ("sizes",))
