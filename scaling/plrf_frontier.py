"""Compute-optimal frontier of power-law random features, read off the theory.

Paquette, Paquette, Xiao and Pennington 2024, Sec. 3: for a compute budget
f = r d (batch 1), d* minimises the expected loss over model sizes. Here the
loss of each size comes from the exact loss recursion (`plrf.theory_loss_curve_log`),
and the measured exponents of d*(f) and loss*(f) are set beside the asymptotic
ones of `plrf_phases.plrf_compute_optimal`.

  python -m scaling.plrf_frontier [--config=scaling/configs/plrf_frontier.py]
      [--config.points=0.8:0.3,0.45:1.0 --config.d_max=2048 --config.seeds=4
       --config.max_flops=1e10 --config.lr_factor=1] [--out=runs/plrf_frontier]

prints, per (alpha, beta), the phase, the asymptotic and measured exponents
(with the 95% intervals of their least-squares fits), their local values over
factor-4 windows of f, and the capacity slope -d log P*/d log d over the sizes
used (the finite-size part of the loss exponent in phases where loss* ~
F_0(d*)). The run folder holds config.json, metrics.jsonl (one record per
point, appended as each finishes, so a rerun computes only the missing points),
frontier.png and summary.md. Every config field is checked before any work; a
bad one ends the program with a one-line `scaling.plrf_frontier: error: ...`
naming it, exit status 1 and nothing written (`kernels.program`).
"""
import math
import time
from typing import Sequence

import numpy as np
import tqdm

from kernels import program
from kernels import runs as run_files
from kernels import slopes
from scaling import plrf
from scaling import plrf_phases


def theory_compute_frontier(alpha: float, beta: float, ds: Sequence[int], *,
                            max_flops: float, v: int = None,
                            v_ratio: float = None, seeds: Sequence[int] = (0,),
                            growth: float = 0.05, num_flops: int = 400,
                            lr_factor: float = 1.0) -> dict:
  """Compute-optimal d*(f) and loss*(f) from theory curves at several d.

  Paquette et al. 2024, Sec. 3 (compute-optimal frontier), read off the
  loss recursion: for each d (data dimension `v`, or `v_ratio` * d, which
  phases with 2 alpha < 1 need) the expected loss given W, averaged over
  the W drawn with `seeds`, is computed up to f = max_flops (f = r d,
  batch 1, learning rate `lr_factor` * 0.25 / tr K). On a log grid of f, d* is the vertex
  of the parabola through log loss against log d at the best size and its
  two neighbours, and loss* the parabola's minimum; where the best size is
  interior to `ds`, the exponents are least-squares slopes of log d* and
  -log loss* against log f, and `local_*` the same slopes over consecutive
  factor-4 windows of f (their drift shows how far the sizes are from the
  asymptote).

  Returns a dict with flops, d_star, loss_star (NaN where the best size is
  at either end of `ds`), capacity (P* per size, averaged over the draws)
  and, with enough interior points, d_exponent, loss_exponent (each with the
  95% interval of its least-squares fit, `*_interval`), local_flops,
  local_d_exponent, local_loss_exponent.
  """
  if (v is None) == (v_ratio is None):
    raise ValueError("give exactly one of `v` and `v_ratio`.")
  ds = [int(d) for d in ds]
  if sorted(set(ds)) != ds or len(ds) < 3:
    raise ValueError("`ds` must be at least three increasing sizes.")
  fs = np.geomspace(ds[-1], max_flops, num_flops)
  table, capacity = [], []
  for d in ds:
    dim = int(v) if v is not None else int(math.ceil(v_ratio * d))
    curves, loss_stars = [], []
    for seed in seeds:
      prob = plrf.make_problem(alpha, beta, d, dim, seed)
      loss_stars.append(prob.loss_star)
      lr = lr_factor * plrf.default_learning_rate(prob)
      rec, loss = plrf.theory_loss_curve_log(prob, int(max_flops // d),
                                             growth=growth, learning_rate=lr)
      curves.append(np.interp(np.log(fs), np.log(np.maximum(rec, 1) * d),
                              np.log(loss)))
    table.append(np.log(np.mean(np.exp(curves), axis=0)))
    capacity.append(np.mean(loss_stars))
  table = np.stack(table)                          # log loss, (len(ds), fs)
  u = np.log(np.asarray(ds, np.float64))
  best = np.argmin(table, axis=0)
  d_star = np.full(len(fs), np.nan)
  loss_star = np.full(len(fs), np.nan)
  for i, k in enumerate(best):
    if 0 < k < len(ds) - 1:
      coef = np.polyfit(u[k - 1:k + 2], table[k - 1:k + 2, i], 2)
      vertex = -coef[1] / (2 * coef[0])
      d_star[i] = np.exp(vertex)
      loss_star[i] = np.exp(np.polyval(coef, vertex))
  out = dict(flops=fs, d_star=d_star, loss_star=loss_star,
             capacity=np.asarray(capacity))
  ok = np.isfinite(d_star)
  if ok.sum() >= 10:
    d_fit = slopes.loglog_fit(fs[ok], d_star[ok])
    loss_fit = slopes.loglog_fit(fs[ok], loss_star[ok])
    out["d_exponent"] = d_fit.slope
    out["d_exponent_interval"] = (d_fit.low, d_fit.high)
    out["loss_exponent"] = -loss_fit.slope
    out["loss_exponent_interval"] = (-loss_fit.high, -loss_fit.low)
    loc_f, loc_d = slopes.windowed_slopes(fs[ok], d_star[ok], factor=4.0, min_points=5)
    _, loc_l = slopes.windowed_slopes(fs[ok], loss_star[ok], factor=4.0, min_points=5)
    out.update(local_flops=loc_f, local_d_exponent=loc_d, local_loss_exponent=-loc_l)
  return out


def sizes(d_min: int, d_max: int) -> list:
  """Powers of 2 from about `d_min` to about `d_max` (log2 rounded)."""
  return [int(2**k) for k in range(int(round(math.log2(d_min))),
                                   int(round(math.log2(d_max))) + 1)]


def check_point(alpha, beta, *, d_min=32, d_max=2048, v_ratio=4.0, seeds=(0,),
                max_flops=1e10, lr_factor=1.0) -> dict:
  """Asymptotic against measured compute-optimal exponents at one (alpha, beta)."""
  ds = sizes(d_min, d_max)
  t0 = time.time()
  out = theory_compute_frontier(alpha, beta, ds, max_flops=max_flops,
                                v_ratio=v_ratio, seeds=seeds,
                                lr_factor=lr_factor)
  theory = plrf_phases.plrf_compute_optimal(alpha, beta)
  # -d log P*/d log d over the largest four sizes: the measured F_0 exponent.
  upper = np.asarray(ds) >= max(ds) / 8
  capacity_slope = -slopes.loglog_fit(np.asarray(ds)[upper],
                                      out["capacity"][upper]).slope
  return dict(
      alpha=alpha, beta=beta, phase=theory["phase"],
      theory_d_exponent=theory["d_exponent"],
      theory_loss_exponent=theory["loss_exponent"],
      d_exponent=out.get("d_exponent"), loss_exponent=out.get("loss_exponent"),
      d_exponent_interval=list(out.get("d_exponent_interval", ())),
      loss_exponent_interval=list(out.get("loss_exponent_interval", ())),
      local_flops=out.get("local_flops", np.zeros(0)).tolist(),
      local_d_exponent=out.get("local_d_exponent", np.zeros(0)).tolist(),
      local_loss_exponent=out.get("local_loss_exponent", np.zeros(0)).tolist(),
      capacity_slope=float(capacity_slope),
      ds=ds, v_ratio=v_ratio, seeds=list(seeds), max_flops=max_flops,
      lr_factor=lr_factor,
      seconds=time.time() - t0)


def parse_points(points) -> list:
  """``"alpha:beta,alpha:beta"`` as (alpha, beta) pairs, or ValueError naming config.points."""
  if isinstance(points, (list, tuple)):
    points = ",".join(str(p) for p in points)
  if not isinstance(points, str) or not points.strip():
    raise ValueError(f"config.points must be alpha:beta pairs, got {points!r}.")
  pairs = []
  for item in points.split(","):
    try:
      alpha, beta = (float(x) for x in item.split(":"))
      plrf_phases.check_alpha_beta(alpha, beta)
    except ValueError as e:
      raise ValueError(f"config.points: {item!r} is not a valid alpha:beta pair "
                       f"({e}).") from None
    pairs.append((alpha, beta))
  return pairs


def check(config) -> list:
  """Checks every config field before any work; returns the (alpha, beta) pairs.

  Raises:
    ValueError: naming the config field, in one line.
  """
  pairs = parse_points(config.points)
  for name in ("d_min", "d_max", "seeds"):
    program.int_field(config, name, minimum=1)
  for name in ("v_ratio", "max_flops", "lr_factor"):
    program.number_field(config, name, positive=True)
  ds = sizes(config.d_min, config.d_max)
  if len(ds) < 3:
    raise ValueError(f"config.d_min={config.d_min} and config.d_max={config.d_max} give "
                     f"sizes {ds}; the frontier needs at least three powers of 2.")
  if config.v_ratio < 1:
    raise ValueError(f"config.v_ratio must be >= 1 (v >= d), got {config.v_ratio}.")
  if config.max_flops <= ds[-1]:
    raise ValueError(f"config.max_flops={config.max_flops:g} must exceed the largest size "
                     f"{ds[-1]}.")
  return pairs


def _interval(row, name) -> str:
  iv = row.get(f"{name}_interval") or ()
  return f" [{iv[0]:.3f}, {iv[1]:.3f}]" if len(iv) == 2 and np.all(np.isfinite(iv)) else ""


def _exponent(row, name) -> str:
  v = row.get(name)
  return "n/a" if v is None else f"{v:.3f}{_interval(row, name)}"


def report(row: dict) -> str:
  """One line per point: phase, measured exponents (intervals) against the asymptotic ones."""
  return (f"{row['phase']:>3} ({row['alpha']}, {row['beta']}): d* exponent "
          f"{_exponent(row, 'd_exponent')} (asymptotic {row['theory_d_exponent']:.3f}), "
          f"loss exponent {_exponent(row, 'loss_exponent')} "
          f"({row['theory_loss_exponent']:.3f}); local d* "
          + " ".join(f"{x:.2f}" for x in row["local_d_exponent"])
          + ", local loss " + " ".join(f"{x:.2f}" for x in row["local_loss_exponent"])
          + f"; capacity slope {row['capacity_slope']:.3f} [{row['seconds']:.0f} s]")


def run(config, out: str, progress: bool = True) -> list:
  """Runs (or resumes) the points of ``config`` in folder ``out``; returns their rows."""
  pairs = check(config)
  run_files.check_resumable(out, program.config_dict(config), EXTENDABLE)
  rd = run_files.RunDir(out)
  rd.start(program.config_dict(config))
  done = rd.done()
  for a, b in tqdm.tqdm(pairs, desc="points", disable=not progress):
    key = f"{a:g}:{b:g}"
    if key in done:
      continue
    row = check_point(a, b, d_min=config.d_min, d_max=config.d_max,
                      v_ratio=config.v_ratio, seeds=tuple(range(config.seeds)),
                      max_flops=config.max_flops, lr_factor=config.lr_factor)
    rd.append(dict(row, key=key))
    tqdm.tqdm.write(report(row))
  keys = {f"{a:g}:{b:g}" for a, b in pairs}
  rows = [r for r in rd.records() if r["key"] in keys]
  plot(rd, rows)
  lines = ["# Compute-optimal frontier of power-law random features", "",
           f"Sizes d = {config.d_min}..{config.d_max} (powers of 2), v = {config.v_ratio:g} d, "
           f"{config.seeds} draws of W per size, f up to {config.max_flops:g}, learning rate "
           f"{config.lr_factor:g} x 0.25 / tr K. Measured exponents with the 95% intervals of "
           "their least-squares fits; asymptotic ones in brackets.", "",
           "| phase | alpha | beta | d* exponent | loss exponent | capacity slope |",
           "| --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    lines.append(f"| {r['phase']} | {r['alpha']:g} | {r['beta']:g} | "
                 f"{_exponent(r, 'd_exponent')} ({r['theory_d_exponent']:.3f}) | "
                 f"{_exponent(r, 'loss_exponent')} ({r['theory_loss_exponent']:.3f}) | "
                 f"{r['capacity_slope']:.3f} |")
  lines += ["", "![local exponents](frontier.png)", ""]
  rd.write_text("summary.md", "\n".join(lines))
  return rows


def plot(rd: run_files.RunDir, rows: list) -> None:
  """Local d* and loss exponents against compute, beside the asymptotic ones."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
  for r in rows:
    label = f"{r['phase']} ({r['alpha']:g}, {r['beta']:g})"
    for ax, name in zip(axes, ("d_exponent", "loss_exponent")):
      line, = ax.plot(r["local_flops"], r[f"local_{name}"], "o-", ms=3, label=label)
      ax.axhline(r[f"theory_{name}"], color=line.get_color(), ls="--", lw=0.8)
  for ax, title in zip(axes, ("d* exponent", "loss* exponent")):
    ax.set(xlabel="compute f = r d", ylabel="local exponent",
           title=f"{title} over factor-4 windows (dashed: asymptotic)")
    if any(len(r["local_flops"]) for r in rows):  # (none for a short range of f)
      ax.set_xscale("log")
  axes[0].legend(fontsize=8)
  rd.save_figure(fig, "frontier.png")
  plt.close(fig)


EXTENDABLE = ("points",)

PROGRAM = program.Program(name="scaling.plrf_frontier",
                          default_config="scaling/configs/plrf_frontier.py",
                          out_name="plrf_frontier", check=check, run=run,
                          extendable=EXTENDABLE)


if __name__ == "__main__":
  program.main(PROGRAM)
