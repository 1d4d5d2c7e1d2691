"""Compute-optimal frontier of power-law random features, read off the theory.

Paquette, Paquette, Xiao and Pennington 2024, Sec. 3: for a compute budget
f = r d (batch 1), d* minimises the expected loss over model sizes. Here the
loss of each size comes from the exact loss recursion (`plrf.theory_loss_curve_log`),
and the measured exponents of d*(f) and loss*(f) are set beside the asymptotic
ones of `plrf_phases.plrf_compute_optimal`.

  python -m scaling.plrf_frontier [--points=0.8:0.3,0.45:1.0] [--d_max=2048]
      [--seeds=4] [--max_flops=1e10] [--lr_factor=1] [--out=runs/plrf_frontier.json]

prints, per (alpha, beta), the phase, the asymptotic and measured exponents,
their local values over factor-4 windows of f, and the capacity slope
-d log P*/d log d over the sizes used (the finite-size part of the loss
exponent in phases where loss* ~ F_0(d*)). Every flag is checked before any
work; a bad one ends the program with a one-line
`scaling.plrf_frontier: error: ...` on stderr, exit status 1 and no file
written. The --out JSON is rewritten atomically after each point.
"""
import math
import os
import time
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

from kernels import cli
from kernels import runs as run_files
from scaling import plrf
from scaling import plrf_phases
from scaling import validation

# One point per phase: Ia, II, III, Ib, Ic, IVa, IVb.
DEFAULT_POINTS = "0.8:0.3,1.0:0.7,0.7:1.0,0.45:0.45,0.2:1.0,0.35:1.0,0.27:1.0"


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
  and, with enough interior points, d_exponent,
  loss_exponent, local_flops, local_d_exponent, local_loss_exponent.
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
    lf, ld, ll = np.log(fs[ok]), np.log(d_star[ok]), np.log(loss_star[ok])
    out["d_exponent"] = float(np.polyfit(lf, ld, 1)[0])
    out["loss_exponent"] = float(-np.polyfit(lf, ll, 1)[0])
    edges = np.arange(lf[0], lf[-1] + 1e-9, np.log(4.0))
    loc_f, loc_d, loc_l = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
      w = (lf >= lo) & (lf <= hi)
      if w.sum() >= 5:
        loc_f.append(np.exp((lo + hi) / 2))
        loc_d.append(np.polyfit(lf[w], ld[w], 1)[0])
        loc_l.append(-np.polyfit(lf[w], ll[w], 1)[0])
    out.update(local_flops=np.asarray(loc_f), local_d_exponent=np.asarray(loc_d),
               local_loss_exponent=np.asarray(loc_l))
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
  capacity_slope = -np.polyfit(np.log(np.asarray(ds)[upper]),
                               np.log(out["capacity"][upper]), 1)[0]
  return dict(
      alpha=alpha, beta=beta, phase=theory["phase"],
      theory_d_exponent=theory["d_exponent"],
      theory_loss_exponent=theory["loss_exponent"],
      d_exponent=out.get("d_exponent"), loss_exponent=out.get("loss_exponent"),
      local_flops=out.get("local_flops", np.zeros(0)).tolist(),
      local_d_exponent=out.get("local_d_exponent", np.zeros(0)).tolist(),
      local_loss_exponent=out.get("local_loss_exponent", np.zeros(0)).tolist(),
      capacity_slope=float(capacity_slope),
      ds=ds, v_ratio=v_ratio, seeds=list(seeds), max_flops=max_flops,
      lr_factor=lr_factor,
      seconds=time.time() - t0)


FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("points", DEFAULT_POINTS,
                      "alpha:beta pairs, comma-separated.")
  flags.DEFINE_integer("d_min", 32, "smallest d (powers of 2 up to d_max).")
  flags.DEFINE_integer("d_max", 2048, "largest d.")
  flags.DEFINE_float("v_ratio", 4.0, "data dimension v = v_ratio * d (>= 1).")
  flags.DEFINE_integer("seeds", 4, "draws of W averaged per size.")
  flags.DEFINE_float("max_flops", 1e10, "largest compute f = r d.")
  flags.DEFINE_float("lr_factor", 1.0, "learning rate in units of 0.25 / tr K "
                     "(the loss diverges beyond about 8).")
  flags.DEFINE_string("out", "", "optional JSON output path.")


def check_flags(points: str, *, d_min, d_max, v_ratio, seeds, max_flops,
                lr_factor, out) -> list:
  """Checks every flag before any work; returns the (alpha, beta) pairs.

  Raises:
    ValueError: naming the flag, in one line.
  """
  pairs = []
  for item in points.split(","):
    try:
      alpha, beta = (float(x) for x in item.split(":"))
      plrf_phases.check_alpha_beta(alpha, beta)
    except ValueError as e:
      raise ValueError(f"--points: {item!r} is not a valid alpha:beta pair "
                       f"({e}).") from e
    pairs.append((alpha, beta))
  try:
    for name, value in (("d_min", d_min), ("d_max", d_max), ("seeds", seeds)):
      validation.check_int(f"--{name}", value, minimum=1)
    for name, value in (("v_ratio", v_ratio), ("max_flops", max_flops),
                        ("lr_factor", lr_factor)):
      validation.check_positive_number(f"--{name}", value)
  except TypeError as e:
    raise ValueError(str(e)) from e
  ds = sizes(d_min, d_max)
  if len(ds) < 3:
    raise ValueError(f"--d_min={d_min} and --d_max={d_max} give sizes {ds}; "
                     "the frontier needs at least three powers of 2.")
  if v_ratio < 1:
    raise ValueError(f"--v_ratio must be >= 1 (v >= d), got {v_ratio}.")
  if max_flops <= ds[-1]:
    raise ValueError(f"--max_flops={max_flops:g} must exceed the largest size "
                     f"{ds[-1]}.")
  if out and (os.path.isdir(out) or os.path.isfile(os.path.dirname(out))):
    raise ValueError(f"--out={out!r} is not a writable file path.")
  return pairs


def main(argv):
  if len(argv) > 1:
    cli.fail("scaling.plrf_frontier", f"unexpected arguments {argv[1:]}.")
  try:
    pairs = check_flags(FLAGS.points, d_min=FLAGS.d_min, d_max=FLAGS.d_max,
                        v_ratio=FLAGS.v_ratio, seeds=FLAGS.seeds,
                        max_flops=FLAGS.max_flops, lr_factor=FLAGS.lr_factor,
                        out=FLAGS.out)
  except ValueError as e:
    cli.fail("scaling.plrf_frontier", e)
  rows = []
  for a, b in pairs:
    row = check_point(a, b, d_min=FLAGS.d_min, d_max=FLAGS.d_max,
                      v_ratio=FLAGS.v_ratio, seeds=tuple(range(FLAGS.seeds)),
                      max_flops=FLAGS.max_flops, lr_factor=FLAGS.lr_factor)
    rows.append(row)
    print(f"{row['phase']:>3} ({a}, {b}): d* exponent {row['d_exponent']:.3f} "
          f"(asymptotic {row['theory_d_exponent']:.3f}), loss exponent "
          f"{row['loss_exponent']:.3f} ({row['theory_loss_exponent']:.3f}); "
          "local d* " + " ".join(f"{x:.2f}" for x in row["local_d_exponent"])
          + ", local loss " + " ".join(f"{x:.2f}" for x in
                                       row["local_loss_exponent"])
          + f"; capacity slope {row['capacity_slope']:.3f} "
          f"[{row['seconds']:.0f} s]", flush=True)
    if FLAGS.out:  # rewritten atomically after each point
      run_files.write_json(FLAGS.out, rows)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.flags_parser("scaling.plrf_frontier"))
