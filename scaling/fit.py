r"""Program: fit Chinchilla approach 3 to a CSV of runs.

  python -m scaling.fit [--config=scaling/configs/fit.py]
      [--config.csv=PATH --config.bootstrap=200 --config.drop_highest=5 ...]
      [--out=runs/scaling_fit]

The CSV needs columns `Model Size`, `Training FLOP` and `loss` (tokens are
FLOP / (6 N)); with `csv` empty (the default config) the runs are drawn from a
known law. The output folder receives config.json, metrics.jsonl, fit.json,
data_fit.png, surface.png, frontier.png and summary.md, each written
atomically; a rerun of the same config reuses a finished folder, one of
another config is refused unless `overwrite` is set. Every config field and
the CSV (readable, the three columns, positive numbers, enough runs with
varying N and D) are checked before anything is written; a bad one ends the
program with a one-line `scaling.fit: error: ...` naming it, exit status 1
(`kernels.program`).
"""
import os
import time

import jax
import numpy as np
import tqdm

from kernels import program
from kernels import runs as run_files
from scaling import chinchilla
from scaling.compute_optimal import compute_optimal
from scaling import data
from scaling import plots

# The law of Hoffmann et al. 2022 (Sec. D.2) from which the default runs are drawn.
SYNTHETIC_LAW = dict(A=406.4, B=410.7, E=1.69, alpha=0.34, beta=0.28)


class InputError(ValueError):
  """A bad config field or input file, reported by the program as one line."""


def load_runs(config) -> data.Runs:
  """The runs of ``config``: its CSV, or synthetic runs when ``csv`` is empty."""
  if config.csv:
    return data.load_chinchilla_csv(config.csv, drop_highest=config.drop_highest)
  s = config.synthetic
  return data.synthetic_runs(SYNTHETIC_LAW, num_sizes=s.num_sizes,
                             num_per_size=s.num_per_size, noise=s.noise,
                             seed=s.seed)


def check(config) -> data.Runs:
  """Checks every config field and the runs before any work; returns the runs.

  Raises:
    InputError: naming the config field (``config.csv`` for the file), in one line.
  """
  try:
    for name in ("bootstrap", "seed", "drop_highest"):
      program.int_field(config, name, minimum=0)
    program.number_field(config, "delta", positive=True)
    program.bool_field(config, "overwrite")
    if not isinstance(config.csv, str):
      raise ValueError(f"config.csv must be a file path or '', got {config.csv!r}.")
    if not config.csv:
      for name in ("num_sizes", "num_per_size"):
        program.int_field(config, f"synthetic.{name}", minimum=3)
      program.int_field(config, "synthetic.seed", minimum=0)
      program.number_field(config, "synthetic.noise", minimum=0.0)
  except ValueError as e:
    raise InputError(str(e)) from None
  try:
    runs = load_runs(config)
    chinchilla.check_fit_inputs(runs.N, runs.D, runs.loss, delta=config.delta,
                                bootstrap=config.bootstrap, seed=config.seed)
  except (OSError, TypeError, ValueError) as e:
    where = "config.csv" if config.csv else "config.synthetic"
    raise InputError(f"{where}: {e}") from None
  return runs


def _finished(out: str, config) -> bool:
  return (not config.overwrite and os.path.exists(os.path.join(out, "summary.md"))
          and os.path.exists(os.path.join(out, "fit.json")))


def run(config, out: str, progress: bool = True) -> dict:
  """Checks the config, then fits, plots and writes the run folder; returns the metrics.

  Raises:
    InputError: a bad config field or CSV, or a folder of another config (nothing
      is written then).
  """
  runs = check(config)
  if not config.overwrite:
    try:
      run_files.check_resumable(out, program.config_dict(config))
    except ValueError as e:
      raise InputError(str(e)) from None
  if _finished(out, config):
    return run_files.read_jsonl(os.path.join(out, "metrics.jsonl"))[-1]
  rd = run_files.RunDir(out)
  rd.start(program.config_dict(config), jax_version=jax.__version__)
  bar = tqdm.tqdm(total=3, desc="scaling.fit", unit="stage", disable=not progress)
  bar.set_postfix_str(f"fit ({config.bootstrap} bootstrap refits)")
  start = time.time()
  fit = chinchilla.fit_chinchilla(runs.N, runs.D, runs.loss, delta=config.delta,
                                  bootstrap=config.bootstrap, seed=config.seed)
  seconds = time.time() - start
  bar.update()
  budgets = np.geomspace(runs.C.min(), 1e26, 40)
  alloc = compute_optimal(fit, budgets)
  metrics = fit.to_dict()
  metrics.update(key="fit", fit_seconds=seconds, num_read=runs.num_read,
                 num_nan_dropped=runs.num_nan_dropped,
                 num_highest_dropped=runs.num_highest_dropped,
                 a_interval=alloc.a_interval)
  rd.write_json("fit.json", metrics)
  rd.append(metrics)
  bar.set_postfix_str("figures")
  for name, plot in (("data_fit.png", plots.plot_fit), ("surface.png", plots.plot_surface)):
    run_files.write_via(rd.path / name, lambda p, plot=plot: plot(fit, runs.N, runs.D,
                                                                  runs.loss, p))
  run_files.write_via(rd.path / "frontier.png", lambda p: plots.plot_frontier(alloc, p))
  bar.update()
  source = config.csv or "synthetic runs of a known law"
  lines = ["# Chinchilla approach 3 fit", "",
           f"{source}: {runs.num_read} rows read, {runs.num_nan_dropped} dropped as "
           f"incomplete, {runs.num_highest_dropped} highest losses dropped; "
           f"{fit.num_points} runs fitted in {seconds:.1f} s.", "",
           "| parameter | estimate | interval |", "| --- | --- | --- |"]
  for k in chinchilla.PARAM_NAMES + ("a", "b"):
    lines.append(f"| {k} | {getattr(fit, k):.4g} | {_interval_text(fit, k)} |")
  lines += ["", f"Converged: {fit.converged} ({fit.num_converged_starts} "
            f"starts converged, {fit.num_starts_at_optimum} at the optimum)."]
  rd.write_text("summary.md", "\n".join(lines) + "\n")
  bar.update()
  bar.close()
  return metrics


def _interval_text(fit, k: str) -> str:
  iv = fit.intervals.get(k) if fit.intervals else None
  return f"[{iv[0]:.4g}, {iv[1]:.4g}]" if iv else "-"


def report(metrics: dict) -> str:
  """One line per parameter with its bootstrap interval, as the program prints them."""
  ivs = metrics.get("intervals") or {}
  lines = []
  for k in chinchilla.PARAM_NAMES + ("a", "b"):
    iv = ivs.get(k)
    lines.append(f"{k:>5} {metrics[k]:.4g}" + (f" [{iv[0]:.4g}, {iv[1]:.4g}]" if iv else ""))
  return "\n".join(lines)


def _check(config) -> None:
  check(config)


PROGRAM = program.Program(name="scaling.fit", default_config="scaling/configs/fit.py",
                          out_name="scaling_fit", check=_check,
                          run=lambda config, out: print(report(run(config, out))))


if __name__ == "__main__":
  program.main(PROGRAM)
