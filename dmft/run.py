r"""Solves a DMFT, trains finite-width ensembles and compares them.

  python -m dmft.run [--config=dmft/configs/two_layer.py] [--config.gamma0=0.5 ...]
      [--out=DIR]

Configs: dmft/configs/{two_layer,deep,residual}.py (two_layer by default); --out
defaults to runs/dmft for the default config and runs/dmft_<config name> for
another. Every config field is checked before any work or write; a bad one ends
the program with one line naming it (`kernels.program`).

Writes, through `kernels.runs.RunDir`, OUT/config.json, OUT/metrics.jsonl (one
record per finished stage, its ``key`` the stage),
OUT/*.png (theory against width-N networks), OUT/summary.md, and caches
(OUT/cache/*.npz). Every write is atomic; a rerun skips the stages whose cache
exists, so an interrupted run resumes where it stopped.
"""
import os
import time

import tqdm

from dmft import convergence
from dmft import data as data_lib
from dmft import ensembles
from dmft import network as netlib
from dmft import solver
from kernels import program
from kernels import runs as io
from dmft import plots

_CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "configs")
SOLVERS = ("two_layer", "deep", "residual")
_REQUIRED = ("solver", "data", "activation", "gamma0", "lr", "steps",
             "n_samples", "seed", "widths", "n_seeds", "gamma_sweep",
             "sweep_samples")


def available_configs():
  """Names of the configs shipped in dmft/configs (without '.py')."""
  return sorted(n[:-3] for n in os.listdir(_CONFIG_DIR)
                if n.endswith(".py") and not n.startswith("_"))


def validate_config(cfg):
  """Raises ValueError naming the first bad config field (before any work)."""
  missing = [k for k in _REQUIRED if k not in cfg]
  if missing:
    raise ValueError(f"config is missing field(s) {missing}")
  if cfg.solver not in SOLVERS:
    raise ValueError(f"config.solver must be one of {SOLVERS}, got "
                     f"{cfg.solver!r}")
  if cfg.solver != "two_layer" and (
      "depth" not in cfg or not isinstance(cfg.depth, int) or cfg.depth < 1 or
      (cfg.solver == "residual" and cfg.depth < 2)):
    raise ValueError("config.depth must be an integer >= 1 (>= 2 for "
                     f"'residual'), got {cfg.get('depth')!r}")
  for k in ("steps", "n_samples", "n_seeds", "sweep_samples"):
    if not isinstance(cfg[k], int) or cfg[k] < 1:
      raise ValueError(f"config.{k} must be a positive integer, got "
                       f"{cfg[k]!r}")
  for k in ("gamma0", "lr"):
    if not isinstance(cfg[k], (int, float)) or not cfg[k] > 0:
      raise ValueError(f"config.{k} must be a positive number, got "
                       f"{cfg[k]!r}")
  if any(not isinstance(w, int) or w < 1 for w in cfg.widths):
    raise ValueError(f"config.widths must be positive integers, got "
                     f"{list(cfg.widths)!r}")
  if any(not isinstance(g, (int, float)) or not g > 0
         for g in cfg.gamma_sweep):
    raise ValueError(f"config.gamma_sweep must be positive numbers, got "
                     f"{list(cfg.gamma_sweep)!r}")


def network(cfg, gamma0=None):
  """The one kernels.stax network of the experiment: the DMFT, the ensembles of every
  width and the lazy kernel are views of it."""
  return netlib.build(max(cfg.widths) if cfg.widths else 1,
                      depth=1 if cfg.solver == "two_layer" else cfg.depth,
                      activation=cfg.activation,
                      gamma0=cfg.gamma0 if gamma0 is None else gamma0,
                      residual=cfg.solver == "residual")


def solve_theory(cfg, x, y, xt, yt, gamma0=None, n_samples=None):
  """`dmft.solve` of the config's network."""
  options = dict(n_samples=cfg.n_samples if n_samples is None else n_samples,
                 seed=cfg.seed)
  if cfg.solver != "two_layer":
    options["n_response"] = cfg.get("n_response", 256)
  return solver.solve(network(cfg, gamma0), x, y, lr=cfg.lr, steps=cfg.steps,
                      X_test=xt, y_test=yt, **options)


def _result_arrays(r):
  return dict(loss=r.loss, f_train=r.f_train, f_test=r.f_test,
              test_loss=r.test_loss, ntk=r.ntk, mc_error=r.mc_error)


def run(cfg, out):
  """Runs (or resumes) the experiment of `cfg` in folder `out`."""
  validate_config(cfg)
  if os.path.exists(out) and not os.path.isdir(out):
    raise ValueError(f"out must be a folder, but {out!r} is a file")
  io.check_resumable(out, program.config_dict(cfg), EXTENDABLE)
  rd = io.RunDir(out)
  rd.start(cfg.to_dict())
  cache_dir = rd.path / "cache"
  cache_dir.mkdir(exist_ok=True)
  _key_records(rd)

  def record(stage, **values):
    """One record per stage (its RunDir key); a rerun's record replaces the old one."""
    rd.append(dict(key=stage, stage=stage, time=time.time(), **values))

  x, y, xt, yt = data_lib.synthetic(**cfg.data.to_dict())
  split_pairs = cfg.get("split_pairs", 0) if cfg.solver == "two_layer" else 0
  stages = ["dmft"] + [f"width_{n}" for n in cfg.widths] + [
      f"split_{n}" for n in (cfg.widths if split_pairs else [])] + [
      f"gamma_{g:g}" for g in cfg.gamma_sweep]
  bar = tqdm.tqdm(stages, desc="dmft.run", unit="stage")
  theory = None
  ens = []
  sweep = {}
  splits = []
  for stage in bar:
    bar.set_postfix_str(stage)
    cache = cache_dir / f"{stage}.npz"
    if cache.exists():
      arrays = io.read_npz(cache)
    elif stage == "dmft":
      r = solve_theory(cfg, x, y, xt, yt)
      arrays = _result_arrays(r)
      io.write_npz(cache, **arrays)
      record(stage, **r.summary())
    elif stage.startswith("width_"):
      n = int(stage.split("_")[1])
      e = ensembles.train_ensemble(
          network(cfg), x, y, width=n, n_seeds=cfg.n_seeds, seed=cfg.seed,
          steps=cfg.steps, lr=cfg.lr, X_test=xt, y_test=yt)
      arrays = dict(loss=e.loss, f_train=e.f_train, f_test=e.f_test,
                    test_loss=e.test_loss, ntk_initial=e.ntk_initial,
                    ntk_final=e.ntk_final)
      io.write_npz(cache, **arrays)
      record(stage, width=n, final_loss_mean=float(e.loss[:, -1].mean()),
             final_loss_std=float(e.loss[:, -1].std()))
    elif stage.startswith("split_"):
      n = int(stage.split("_")[1])
      sp = ensembles.train_split_pairs(
          network(cfg), x, y, width=n, n_pairs=split_pairs, seed=cfg.seed + 1,
          steps=cfg.steps, lr=cfg.lr)
      arrays = dict(loss_a=sp.loss_a, loss_b=sp.loss_b, loss_union=sp.loss_union)
      io.write_npz(cache, **arrays)
      record(stage, width=n, bias_difference=float(sp.difference.mean()))
    else:
      g = float(stage.split("_")[1])
      r = solve_theory(cfg, x, y, xt, yt, gamma0=g,
                       n_samples=cfg.sweep_samples)
      arrays = _result_arrays(r)
      io.write_npz(cache, **arrays)
      record(stage, gamma0=g,
             alignment=convergence.kernel_alignment(r.ntk[-1], y),
             **r.summary())
    if stage == "dmft":
      theory = arrays
    elif stage.startswith("width_"):
      ens.append(ensembles.EnsembleResult(
          width=int(stage.split("_")[1]), loss=arrays["loss"],
          f_train=arrays["f_train"], f_test=arrays.get("f_test"),
          test_loss=arrays.get("test_loss"),
          ntk_initial=arrays.get("ntk_initial"),
          ntk_final=arrays.get("ntk_final")))
    elif stage.startswith("split_"):
      splits.append(ensembles.SplitPairs(
          width=int(stage.split("_")[1]), loss_a=arrays["loss_a"],
          loss_b=arrays["loss_b"], loss_union=arrays["loss_union"]))
    else:
      sweep[float(stage.split("_")[1])] = arrays

  class _Theory:  # the fields `convergence.measure` reads
    loss = theory["loss"]
    f_train = theory["f_train"]
    ntk = theory["ntk"]

  summary = {}
  if len(ens) >= 2:
    conv = convergence.measure(ens, _Theory)
    print(conv.report())
    record("convergence", **conv.as_dict())
    summary["convergence"] = conv
  if len(splits) >= 2:
    split = convergence.measure_split_bias(splits)
    print(split.report())
    record("split_bias", **split.as_dict())
    summary["split_bias"] = split
  plots.theory_vs_width(theory, ens, os.path.join(out, "loss_vs_width.png"))
  if len(ens) >= 2:
    plots.width_scaling(summary["convergence"],
                        os.path.join(out, "width_scaling.png"),
                        split=summary.get("split_bias"))
  if sweep:
    plots.lazy_to_rich(sweep, y, os.path.join(out, "lazy_to_rich.png"))
  rd.write_text("summary.md", _summary_md(cfg, theory, ens, summary, sweep, y))
  return {r["stage"]: r for r in rd.records()}


def _key_records(rd):
  """Gives the records of a folder written before they carried a key the key of their stage."""
  records = rd.records()
  if any("key" not in r for r in records):
    io.write_jsonl(rd.path / "metrics.jsonl",
                   [r if "key" in r else dict(r, key=r["stage"]) for r in records])


def _summary_md(cfg, theory, ens, summary, sweep, y):
  lines = [f"# DMFT run: {cfg.solver}", "",
           f"activation {cfg.activation}, gamma0 {cfg.gamma0}, lr {cfg.lr}, "
           f"steps {cfg.steps}, DMFT samples {cfg.n_samples}", "",
           f"DMFT final train loss: {theory['loss'][-1]:.5g}", ""]
  if ens:
    lines += ["| width | final loss (mean) | std over seeds |", "|---|---|---|"]
    for e in ens:
      lines.append(f"| {e.width} | {e.loss[:, -1].mean():.5g} | "
                   f"{e.loss[:, -1].std():.3g} |")
    lines.append("")
  if "convergence" in summary:
    lines += ["```", summary["convergence"].report(), "```", ""]
  if "split_bias" in summary:
    lines += ["Loss bias from split pairs (width-N halves against their "
              "width-2N union):", "", "```", summary["split_bias"].report(), "```", ""]
  if sweep:
    lines += ["| gamma0 | final NTK alignment with yy^T | test loss |",
              "|---|---|---|"]
    for g in sorted(sweep):
      a = convergence.kernel_alignment(sweep[g]["ntk"][-1], y)
      tl = sweep[g].get("test_loss")
      tl = "n/a" if tl is None else f"{tl[-1]:.4g}"
      lines.append(f"| {g:g} | {a:.4f} | {tl} |")
  return "\n".join(lines) + "\n"


# Fields a rerun into the same folder may change (new stages run, old ones are kept).
EXTENDABLE = ("widths", "gamma_sweep")

PROGRAM = program.Program(name="dmft.run", default_config="dmft/configs/two_layer.py",
                          out_name="dmft", check=validate_config, run=run,
                          extendable=EXTENDABLE)


def default_out(config_path):
  """runs/dmft for the default config, runs/dmft_<config file stem> for another."""
  return PROGRAM.default_out(config_path)


if __name__ == "__main__":
  program.main(PROGRAM)
