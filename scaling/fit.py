r"""Command line: fit Chinchilla approach 3 to a CSV of runs.

  python -m scaling.fit --csv=PATH --out=DIR [--bootstrap=200] [--drop_highest=5]

The CSV needs columns `Model Size`, `Training FLOP` and `loss` (tokens are
FLOP / (6 N)). The output folder receives config.json, metrics.jsonl,
fit.json, data_fit.png, surface.png, frontier.png and summary.md, each
written atomically; a rerun with the same config skips a finished folder
unless --overwrite is given. Every flag and the CSV (readable, the three
columns, positive numbers, enough runs with varying N and D) are checked
before anything is written; a bad one ends the program with a one-line
`scaling.fit: error: ...` on stderr and exit status 1.
"""
import json
import os
import time

from absl import app
from absl import flags
import jax
import numpy as np

from scaling import chinchilla
from scaling.compute_optimal import compute_optimal
from scaling import data
from kernels import cli
from kernels import runs as run_files
from scaling import plots
from scaling import validation

FLAGS = flags.FLAGS


def define_flags():
  """Command-line flags (defined only when run as a program, so importing is side-effect free)."""
  flags.DEFINE_string("csv", None, "CSV file of runs.")
  flags.DEFINE_string("out", None, "Output folder.")
  flags.DEFINE_integer("bootstrap", 200, "Bootstrap resamples (0: none).")
  flags.DEFINE_integer("seed", 0, "Bootstrap seed.")
  flags.DEFINE_integer("drop_highest", 5, "Drop this many highest-loss runs.")
  flags.DEFINE_float("delta", 1e-3, "Huber threshold on log-loss residuals.")
  flags.DEFINE_bool("overwrite", False, "Refit even if the folder is complete.")


class InputError(ValueError):
  """A bad flag or input file, reported by the program as one line."""


def check_config(csv: str, out: str, *, bootstrap: int = 200, seed: int = 0,
                 drop_highest: int = 5, delta: float = 1e-3) -> data.Runs:
  """Checks every option and the CSV before any work; returns the runs to fit.

  Raises:
    InputError: naming the flag or the file, in one line.
  """
  if not csv or not out:
    raise InputError("--csv and --out are required.")
  if os.path.exists(out) and not os.path.isdir(out):
    raise InputError(f"--out={out!r} exists and is not a folder.")
  try:
    for name, value in (("bootstrap", bootstrap), ("seed", seed),
                        ("drop_highest", drop_highest)):
      validation.check_int(f"--{name}", value)
    validation.check_positive_number("--delta", delta)
  except (TypeError, ValueError) as e:
    raise InputError(str(e)) from e
  try:
    runs = data.load_chinchilla_csv(csv, drop_highest=drop_highest)
    chinchilla.check_fit_inputs(runs.N, runs.D, runs.loss, delta=delta,
                                bootstrap=bootstrap, seed=seed)
  except (OSError, TypeError, ValueError) as e:
    raise InputError(f"--csv: {e}") from e
  return runs


def run(csv: str, out: str, *, bootstrap: int = 200, seed: int = 0,
        drop_highest: int = 5, delta: float = 1e-3,
        overwrite: bool = False) -> dict:
  """Checks the input, then fits, plots and writes the run folder; returns the metrics dict.

  Raises:
    InputError: a bad option or CSV (nothing is written then).
  """
  runs = check_config(csv, out, bootstrap=bootstrap, seed=seed,
                      drop_highest=drop_highest, delta=delta)
  config = dict(csv=os.path.abspath(csv), bootstrap=bootstrap, seed=seed,
                drop_highest=drop_highest, delta=delta)
  summary_path = os.path.join(out, "summary.md")
  config_path = os.path.join(out, "config.json")
  if not overwrite and os.path.exists(summary_path) and os.path.exists(
      config_path):
    with open(config_path) as f:
      if json.load(f) == config:
        with open(os.path.join(out, "fit.json")) as g:
          return json.load(g)
  os.makedirs(out, exist_ok=True)
  run_files.write_json(config_path, config)
  start = time.time()
  fit = chinchilla.fit_chinchilla(runs.N, runs.D, runs.loss, delta=delta,
                                  bootstrap=bootstrap, seed=seed)
  seconds = time.time() - start
  budgets = np.geomspace(runs.C.min(), 1e26, 40)
  alloc = compute_optimal(fit, budgets)
  metrics = fit.to_dict()
  metrics.update(fit_seconds=seconds, num_read=runs.num_read,
                 num_nan_dropped=runs.num_nan_dropped,
                 num_highest_dropped=runs.num_highest_dropped,
                 a_interval=alloc.a_interval, jax_version=jax.__version__)
  run_files.write_json(os.path.join(out, "fit.json"), metrics)
  run_files.write_text(os.path.join(out, "metrics.jsonl"),
                             json.dumps(metrics, default=float) + "\n")
  run_files.write_via(os.path.join(out, "data_fit.png"),
                      lambda p: plots.plot_fit(fit, runs.N, runs.D, runs.loss, p))
  run_files.write_via(os.path.join(out, "surface.png"),
                      lambda p: plots.plot_surface(fit, runs.N, runs.D, runs.loss, p))
  run_files.write_via(os.path.join(out, "frontier.png"),
                      lambda p: plots.plot_frontier(alloc, p))
  lines = ["# Chinchilla approach 3 fit", "",
           f"{runs.num_read} rows read, {runs.num_nan_dropped} dropped as "
           f"incomplete, {runs.num_highest_dropped} highest losses dropped; "
           f"{fit.num_points} runs fitted in {seconds:.1f} s.", "",
           "| parameter | estimate | interval |", "| --- | --- | --- |"]
  for k in chinchilla.PARAM_NAMES + ("a", "b"):
    iv = fit.intervals.get(k) if fit.intervals else None
    iv_text = f"[{iv[0]:.4g}, {iv[1]:.4g}]" if iv else "-"
    lines.append(f"| {k} | {getattr(fit, k):.4g} | {iv_text} |")
  lines += ["", f"Converged: {fit.converged} ({fit.num_converged_starts} "
            f"starts converged, {fit.num_starts_at_optimum} at the optimum)."]
  run_files.write_text(summary_path, "\n".join(lines) + "\n")
  return metrics


def main(argv):
  if len(argv) > 1:
    cli.fail("scaling.fit", f"unexpected arguments {argv[1:]}.")
  try:
    metrics = run(FLAGS.csv, FLAGS.out, bootstrap=FLAGS.bootstrap,
                  seed=FLAGS.seed, drop_highest=FLAGS.drop_highest,
                  delta=FLAGS.delta, overwrite=FLAGS.overwrite)
  except InputError as e:
    cli.fail("scaling.fit", e)
  print(json.dumps({k: metrics[k] for k in chinchilla.PARAM_NAMES}))


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.flags_parser("scaling.fit"))
