r"""Coordinate check: mean |activation| per layer against width over the first training steps.

  python -m lm.coord_check --out=runs/lm_coord_check

For each parameterization and width, trains `steps` Adam steps and records, at
steps 0..steps on a fixed batch, the mean absolute value of the embedding output,
each block's attention and MLP branch outputs, and the logits (averaged over
seeds). Pass criterion (Yang et al. 2022, "Tensor Programs V", Sec. 6 / Fig. 5):
under muP the ratio between the widest and the narrowest width (16x apart) stays
within [1/tol, tol] (tol = 1.2) at steps 1..3 for every layer; under SP it does not.
Writes config.json, metrics.jsonl, coord_check.png, summary.md.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from kernels import runs as io
from lm import scales as scales_lib
from lm import sweep
from lm import train


def layer_means(mc, state, tokens) -> dict:
  """Mean |x| of every sown activation (embedding, block_i/attn_out, block_i/mlp_out, logits)."""
  _, inter = scales_lib.apply(mc, state.params, state.scales, tokens, intermediates=True)
  out = {}
  for path, v in jax.tree_util.tree_flatten_with_path(inter)[0]:
    names = [getattr(k, "key", None) for k in path if getattr(k, "key", None) is not None]
    out["/".join(names)] = jnp.abs(v).mean()
  return out


def measure(cfg, parameterization: str, width: int, seeds, steps: int) -> dict:
  """layer -> (steps + 1,) mean |x| averaged over seeds."""
  c = cfg.train.copy_and_resolve_references()
  c.model.width = width
  c.model.parameterization = parameterization
  c.steps = steps
  tr = train.Trainer(c)
  probe = tr._eval_batch(jax.random.PRNGKey(12345))[:, :-1]
  means = jax.jit(lambda s, t: layer_means(tr.mc, s, t))
  lr = jnp.float32(c.lr)
  acc = {}
  for seed in seeds:
    state = tr.init(seed)
    for t in range(steps + 1):
      for k, v in means(state, probe).items():
        acc.setdefault(k, np.zeros((len(seeds), steps + 1)))[seeds.index(seed), t] = float(v)
      if t < steps:
        state, _ = tr.step_fn(state, tr.batch(t), lr)
  return {k: v.mean(0) for k, v in acc.items()}


def verdict(results: dict, parameterization: str, widths, tol: float, steps=(1, 2, 3)):
  """(passes, worst ratio, per-layer ratios) between the widest and narrowest width."""
  lo, hi = results[(parameterization, min(widths))], results[(parameterization, max(widths))]
  ratios = {k: [float(hi[k][t] / lo[k][t]) for t in steps] for k in lo}
  worst = max((max(r, 1 / r) for v in ratios.values() for r in v))
  return worst <= tol, worst, ratios


def check(cfg):
  """Raises ValueError naming the first bad config field (before any work)."""
  widths = list(cfg.widths)
  if len(widths) < 2 or any(not isinstance(w, int) or w < 1 for w in widths):
    raise ValueError(f"config.widths must be at least two positive integers, got {widths}.")
  if not isinstance(cfg.steps, int) or cfg.steps < 3:
    raise ValueError(f"config.steps must be an integer >= 3 (the criterion reads steps 1-3), "
                     f"got {cfg.steps!r}.")
  if not isinstance(cfg.seeds, int) or cfg.seeds < 1:
    raise ValueError(f"config.seeds must be a positive integer, got {cfg.seeds!r}.")
  if not cfg.tol > 1:
    raise ValueError(f"config.tol must be > 1, got {cfg.tol!r}.")
  for p in cfg.parameterizations:
    c = cfg.train.copy_and_resolve_references()
    c.model.parameterization = p
    for w in widths:  # model checks (heads dividing width...) before any work
      c.model.width = w
      train.validate(c)


def run(cfg, out):
  check(cfg)
  widths = list(cfg.widths)
  rd = sweep.open_run(out, cfg, extendable=("widths",))
  done = {r["key"]: r for r in rd.records()}
  results = {}
  jobs = [(p, w) for p in cfg.parameterizations for w in widths]
  for p, w in tqdm.tqdm(jobs, desc="lm.coord_check"):
    key = f"{p}_w{w}"
    if key not in done:
      m = measure(cfg, p, w, list(range(cfg.seeds)), cfg.steps)
      done[key] = dict(key=key, parameterization=p, width=w,
                       means={k: v.tolist() for k, v in m.items()})
      rd.append(done[key])
    results[(p, w)] = {k: np.asarray(v) for k, v in done[key]["means"].items()}
  lines = [f"# lm.coord_check: widths {widths}, {cfg.steps} Adam steps at lr {cfg.train.lr:g}, "
           f"{cfg.seeds} seeds", "",
           f"Criterion: ratio of mean |x| between width {max(widths)} and {min(widths)} within "
           f"[1/{cfg.tol:g}, {cfg.tol:g}] at steps 1-3 for every layer.", ""]
  report = {}
  for p in cfg.parameterizations:
    ok, worst, ratios = verdict(results, p, widths, cfg.tol)
    report[p] = dict(passes=ok, worst=worst)
    lines += [f"## {p}: {'PASS' if ok else 'FAIL'} (worst ratio {worst:.3f})", "",
              "| layer | step 1 | step 2 | step 3 |", "|---|---|---|---|"]
    lines += [f"| {k} | " + " | ".join(f"{r:.3f}" for r in v) + " |" for k, v in ratios.items()]
    lines.append("")
    print(f"lm.coord_check: {p}: {'PASS' if ok else 'FAIL'}: worst ratio width "
          f"{max(widths)}/{min(widths)} at steps 1-3 is {worst:.3f} (criterion <= {cfg.tol:g})")
  rd.append(dict(key="verdict", **report))
  rd.write_text("summary.md", "\n".join(lines) + "\n")
  _plot(results, cfg, widths, os.path.join(out, "coord_check.png"))
  return report


def _plot(results, cfg, widths, path):
  ps = list(cfg.parameterizations)
  layers = list(results[(ps[0], widths[0])])
  fig, axes = io.figure(len(ps), cfg.steps + 1, figsize=(3.2 * (cfg.steps + 1), 3 * len(ps)),
                           squeeze=False, sharey="row")
  for i, p in enumerate(ps):
    for t in range(cfg.steps + 1):
      ax = axes[i, t]
      for k in layers:
        ax.plot(widths, [results[(p, w)][k][t] for w in widths], "o-", label=k, ms=3)
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.set_title(f"{p}, step {t}")
      ax.set_xlabel("width")
  axes[0, 0].set_ylabel("mean |x|")
  axes[0, -1].legend(fontsize=6)
  io.save_figure(fig, path)


if __name__ == "__main__":
  from lm import program  # pylint: disable=g-import-not-at-top
  program.main("lm.coord_check", "coord_check.py", "lm_coord_check", check, run, ("widths",))
