"""Speed of Chinchilla approach 3: vmapped JAX L-BFGS against a SciPy loop.

  python -m benchmarks.scaling_fit_speed [--scipy_starts=450] [--repeats=3]

Both fit L(N, D) = E + A/N^alpha + B/D^beta (Huber loss on log-loss, delta =
1e-3, objective divided by delta, the same stopping tolerances) to the 240
kept runs of ../shared/data/chinchilla_svg_extracted.csv (synthetic runs of
the same size when the file is absent) from the 4500-point grid of Hoffmann
et al. 2022. JAX solves the whole grid in one jitted, vmapped program; the
baseline calls scipy.optimize.minimize(method="L-BFGS-B") start by start with
an exact NumPy gradient. The SciPy loop over all 4500 starts takes tens of
minutes, so by default it runs on a random subset of `--scipy_starts` starts
and its full-grid time is the per-start time times 4500 (use
--scipy_starts=4500 to time it all). Results go to
benchmarks/results/scaling_fit_speed.json.
"""
import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import time

import jax
import numpy as np
import scipy
from scipy import optimize

from scaling import chinchilla
from scaling import data

HERE = pathlib.Path(__file__).resolve().parent
CSV = HERE.parent.parent / "shared" / "data" / "chinchilla_svg_extracted.csv"


def numpy_objective(theta, log_n, log_d, log_loss, delta):
  """Value and exact gradient of the approach-3 objective (divided by delta)."""
  a, b, e, alpha, beta = theta
  t1 = np.exp(np.minimum(a - alpha * log_n, 700.0))
  t2 = np.exp(np.minimum(b - beta * log_d, 700.0))
  t3 = np.exp(min(e, 700.0))
  s = t1 + t2 + t3
  r = np.log(s) - log_loss
  h = np.where(np.abs(r) <= delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
  dh = np.clip(r, -delta, delta) / s
  grad = np.array([np.sum(dh * t1), np.sum(dh * t2), np.sum(dh * t3),
                   -np.sum(dh * t1 * log_n), -np.sum(dh * t2 * log_d)])
  return h.sum() / delta, grad / delta


def scipy_grid(grid, log_n, log_d, log_loss, delta):
  """SciPy L-BFGS-B from each start (same tolerances as the JAX fit)."""
  best = (np.inf, None)
  values = []
  for x0 in grid:
    res = optimize.minimize(numpy_objective, x0, jac=True, method="L-BFGS-B",
                            args=(log_n, log_d, log_loss, delta),
                            options=dict(maxiter=500, ftol=chinchilla.FTOL,
                                         gtol=chinchilla.GTOL))
    values.append(res.fun)
    if np.isfinite(res.fun) and res.fun < best[0]:
      best = (res.fun, res.x)
  return best, np.asarray(values)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--scipy_starts", type=int, default=450)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", default=str(HERE / "results" /
                                           "scaling_fit_speed.json"))
  args = parser.parse_args(argv)

  if CSV.exists():
    runs = data.load_chinchilla_csv(str(CSV))
    source = "chinchilla_svg_extracted.csv (240 kept runs)"
  else:
    runs = data.synthetic_runs(dict(A=482.0, B=2085.0, E=1.82, alpha=0.348,
                                    beta=0.366), num_sizes=12,
                               num_per_size=20)
    source = "synthetic runs (CSV absent)"
  grid = chinchilla.hoffmann_grid()
  delta = 1e-3

  start = time.perf_counter()
  fit = chinchilla.fit_chinchilla(runs.N, runs.D, runs.loss, delta=delta)
  first_call = time.perf_counter() - start
  jax_times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    fit = chinchilla.fit_chinchilla(runs.N, runs.D, runs.loss, delta=delta)
    jax_times.append(time.perf_counter() - start)
  jax_median = statistics.median(jax_times)

  rng = np.random.default_rng(args.seed)
  num = min(args.scipy_starts, len(grid))
  subset = grid if num == len(grid) else grid[np.sort(
      rng.choice(len(grid), num, replace=False))]
  logs = (np.log(runs.N), np.log(runs.D), np.log(runs.loss))
  start = time.perf_counter()
  (best_value, best_x), values = scipy_grid(subset, *logs, delta)
  scipy_subset_s = time.perf_counter() - start
  scipy_full_s = scipy_subset_s / num * len(grid)

  ours = np.array([fit.A, fit.B, fit.E, fit.alpha, fit.beta])
  theirs = chinchilla._from_theta(best_x)  # pylint: disable=protected-access
  result = dict(
      benchmark="scaling_fit_speed",
      data=source,
      num_points=int(len(runs.N)),
      grid_points=int(len(grid)),
      machine=dict(platform=platform.platform(), processor=platform.processor(),
                   cpu_count=os.cpu_count(), python=sys.version.split()[0],
                   jax_backend=jax.default_backend()),
      versions=dict(jax=jax.__version__, numpy=np.__version__,
                    scipy=scipy.__version__),
      median_s=dict(jax_full_grid=jax_median,
                    scipy_full_grid_estimated=scipy_full_s),
      jax_repeats_s=jax_times,
      jax_first_call_s=first_call,
      scipy_starts_timed=int(num),
      scipy_timed_s=scipy_subset_s,
      scipy_per_start_ms=1e3 * scipy_subset_s / num,
      ratios=dict(scipy_over_jax=scipy_full_s / jax_median,
                  scipy_over_jax_first_call=scipy_full_s / first_call),
      jax_optimum=dict(zip(chinchilla.PARAM_NAMES, ours.tolist()),
                       objective=fit.objective),
      scipy_optimum=dict(zip(chinchilla.PARAM_NAMES, theirs.tolist()),
                         objective=float(best_value * delta)),
      optimum_max_rel_param_diff=float(np.max(np.abs(ours / theirs - 1))),
      optimum_rel_objective_diff=float(fit.objective / (best_value * delta) - 1),
      jax_converged_starts=fit.num_converged_starts,
      scipy_finite_starts=int(np.isfinite(values).sum()),
  )
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  tmp = args.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(result, f, indent=2)
  os.replace(tmp, args.out)
  for row in summary(result):
    print(f"{row[0]:50s} {row[1]}")
  return result


def summary(result):
  """Rows (label, value) for the benchmark table."""
  return [
      ("scaling_fit_speed: jax full grid median (s)",
       f"{result['median_s']['jax_full_grid']:.2f}"),
      ("scaling_fit_speed: scipy full grid (s, est.)",
       f"{result['median_s']['scipy_full_grid_estimated']:.1f}"),
      ("scaling_fit_speed: speed-up", f"{result['ratios']['scipy_over_jax']:.1f}x"),
      ("scaling_fit_speed: max rel. param diff",
       f"{result['optimum_max_rel_param_diff']:.2e}"),
  ]


if __name__ == "__main__":
  main()
