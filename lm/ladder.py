r"""The model ladder: six or more sizes trained compute-optimally on a synthetic language,
fitted with `scaling/` to recover the language's known entropy rate.

  python -m lm.ladder --out=runs/lm_ladder

Each size (width, depth) is trained under muP at one transferred learning rate on
D = tokens_per_param x N tokens (Hoffmann et al. 2022 found D ~ 20 N optimal),
N counting every parameter (embeddings included: on a small-vocabulary Markov
language they hold much of the model). The held-out loss is recorded at several
token counts along each run. Two fits, both from `scaling`:
`scaling.power_law.fit_power_law` on the final losses, L(N) = E + A N^-alpha, and
`scaling.chinchilla.fit_chinchilla` on every (N, D, loss), L = E + A/N^alpha +
B/D^beta (Hoffmann et al. 2022, eq. 10). The irreducible loss E of each is compared
with the exact entropy rate of the language (`lm.data.MarkovLanguage.entropy_rate`).
Intermediate points of a constant-rate run stand in for separately tuned shorter
runs (an approximation that slightly overstates their loss). Writes config.json,
metrics.jsonl (one record per size, resumable), ladder.png, summary.md.
"""
from __future__ import annotations

import os

import numpy as np

from kernels import runs as io
from lm import sweep
from lm import train
from lm.config import ModelConfig
from scaling import chinchilla
from scaling import power_law


def size_config(cfg, width: int, depth: int):
  c = cfg.train.copy_and_resolve_references()
  c.model.width, c.model.depth = width, depth
  mc = train.model_config(c)
  n = mc.num_params(embeddings=True)
  tokens = cfg.tokens_per_param * n
  per_step = c.batch_size * (mc.seq_len - train.language(c).loss_skip)
  c.steps = max(cfg.evals_per_run, int(round(tokens / per_step)))
  c.eval_every = max(1, c.steps // cfg.evals_per_run)
  train.validate(c)
  return c, n, per_step


def check(cfg):
  """Raises ValueError naming the first bad config field (before any work)."""
  sizes = [tuple(s) for s in cfg.sizes]
  if len(sizes) < 6 or any(len(s) != 2 for s in sizes):
    raise ValueError(f"config.sizes needs at least six (width, depth) pairs, got {sizes}.")
  if cfg.train.data.kind != "markov":
    raise ValueError("config.train.data.kind must be 'markov' (a language with a known "
                     "entropy rate).")
  if not cfg.tokens_per_param > 0:
    raise ValueError(f"config.tokens_per_param must be positive, got {cfg.tokens_per_param!r}.")
  if not isinstance(cfg.evals_per_run, int) or cfg.evals_per_run < 2:
    raise ValueError(f"config.evals_per_run must be an integer >= 2, got {cfg.evals_per_run!r}.")
  for w, d in sizes:
    size_config(cfg, w, d)


def analyse(records: dict, entropy_rate: float, *, power_law_grid=None, chinchilla_grid=None):
  """The two fits of the ladder's records (key -> one size's record: params, tokens,
  eval_loss at each token count, diverged), compared with the entropy rate.

  The grids of initial points default to those of `scaling.power_law.fit_power_law`
  (990 starts) and `scaling.chinchilla.fit_chinchilla` (4500).

  Returns (report, fits): the JSON-able report (entropy rate, both fits, relative
  errors of their E) and the fits with their data (pl, ch, err_pl, err_ch, N, final,
  nn, dd, ll). Raises ValueError if a run diverged.
  """
  h = entropy_rate
  keys = list(records)
  N = np.array([records[k]["params"] for k in keys], float)
  final = np.array([records[k]["eval_loss"][-1] for k in keys], float)
  if not np.all(np.isfinite(final)) or any(records[k]["diverged"] for k in keys):
    raise ValueError("a ladder run diverged; lower config.train.lr.")
  pl = power_law.fit_power_law(N, final, grid=power_law_grid)
  nn, dd, ll = [], [], []
  for k in keys:
    for t, l in zip(records[k]["tokens"], records[k]["eval_loss"]):
      nn.append(records[k]["params"]), dd.append(t), ll.append(l)
  nn, dd, ll = np.array(nn, float), np.array(dd, float), np.array(ll, float)
  ch = chinchilla.fit_chinchilla(nn, dd, ll, grid=chinchilla_grid)
  err_pl, err_ch = (pl.E - h) / h, (ch.E - h) / h
  report = dict(entropy_rate=h, power_law=pl.to_dict(), chinchilla=ch.to_dict(),
                power_law_E_rel_error=err_pl, chinchilla_E_rel_error=err_ch)
  return report, dict(pl=pl, ch=ch, err_pl=err_pl, err_ch=err_ch, N=N, final=final, nn=nn,
                      dd=dd, ll=ll)


def run(cfg, out):
  """Trains (or resumes) the ladder in ``out`` and fits it; returns `analyse`'s (report,
  fits)."""
  check(cfg)
  sizes = [tuple(s) for s in cfg.sizes]
  rd = sweep.open_run(out, cfg, extendable=("sizes",))
  jobs = {}
  for w, d in sizes:
    c, n, per_step = size_config(cfg, w, d)

    def job(device, c=c, n=n, per_step=per_step, w=w, d=d):
      r = sweep.train_grid(c, [c.lr], [c.seed], device=device)
      return dict(width=w, depth=d, params=n, steps=c.steps,
                  tokens=[s * per_step for s in r["eval_steps"]],
                  eval_loss=[float(x) for x in r["eval_loss"][:, 0, 0]],
                  diverged=bool(r["diverged"][0, 0]))
    jobs[f"w{w}_d{d}"] = job
  recs = sweep.run_jobs(jobs, rd, desc="lm.ladder")
  h = train.language(cfg.train).entropy_rate()
  report, fits = analyse(recs, h)
  pl, ch, err_pl, err_ch = fits["pl"], fits["ch"], fits["err_pl"], fits["err_ch"]
  N, final, nn, dd, ll = (fits[k] for k in ("N", "final", "nn", "dd", "ll"))
  rd.append(dict(key="fits", **report))
  msg = (f"lm.ladder: entropy rate {h:.4f} nats; power law with offset E = {pl.E:.4f} "
         f"({100 * err_pl:+.1f}%), alpha = {pl.alpha:.3f}; Chinchilla L(N, D) E = {ch.E:.4f} "
         f"({100 * err_ch:+.1f}%), alpha = {ch.alpha:.3f}, beta = {ch.beta:.3f}")
  print(msg)
  _plot(N, final, pl, h, np.array(nn), np.array(dd), np.array(ll), ch,
        os.path.join(out, "ladder.png"))
  lines = [f"# lm.ladder: {len(sizes)} sizes, {cfg.tokens_per_param} tokens per parameter", "",
           "| width | depth | parameters N | tokens D | final held-out loss |",
           "|---|---|---|---|---|"]
  for k in jobs:
    r = recs[k]
    lines.append(f"| {r['width']} | {r['depth']} | {r['params']} | {r['tokens'][-1]} | "
                 f"{r['eval_loss'][-1]:.4f} |")
  lines += ["", f"Entropy rate of the language (irreducible loss): {h:.4f} nats/token.", "",
            f"* power law with offset, L(N) = E + A N^-alpha: E = {pl.E:.4f} "
            f"({100 * err_pl:+.2f}% of the entropy rate), A = {pl.A:.4g}, alpha = {pl.alpha:.3f}",
            f"* Chinchilla L(N, D) = E + A/N^alpha + B/D^beta on {len(ll)} points: E = "
            f"{ch.E:.4f} ({100 * err_ch:+.2f}%), alpha = {ch.alpha:.3f}, beta = {ch.beta:.3f}"]
  rd.write_text("summary.md", "\n".join(lines) + "\n")
  return report, fits


def _plot(N, final, pl, h, nn, dd, ll, ch, path):
  fig, (a, b) = io.figure(1, 2, figsize=(9, 3.6))
  xs = np.geomspace(N.min() / 1.5, N.max() * 4, 100)
  a.plot(N, final, "o", label="final held-out loss")
  a.plot(xs, pl.predict(xs), "-", label=f"E + A N^-{pl.alpha:.2f}, E = {pl.E:.3f}")
  a.axhline(h, color="k", ls="--", label=f"entropy rate {h:.3f}")
  a.set_xscale("log")
  a.set_xlabel("parameters N")
  a.set_ylabel("loss (nats/token)")
  a.legend(fontsize=7)
  for n in np.unique(nn):
    m = nn == n
    b.plot(dd[m], ll[m], "o", ms=3)
    b.plot(dd[m], ch.predict(n, dd[m]), "-", lw=0.8)
  b.axhline(h, color="k", ls="--")
  b.set_xscale("log")
  b.set_xlabel("tokens D")
  b.set_title(f"Chinchilla fit: E = {ch.E:.3f}")
  io.save_figure(fig, path)


if __name__ == "__main__":
  from lm import program  # pylint: disable=g-import-not-at-top
  program.main("lm.ladder", "ladder.py", "lm_ladder", check, run, ("sizes",))
