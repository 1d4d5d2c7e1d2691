r"""Theory against finite width: empirical kernels of sampled networks vs kernel_fn.

The main job of the project (``make demo``). On a built-in data set (scikit-learn's
digits, each image scaled to per-feature second moment 1, or synthetic Gaussian
data) it

1. samples networks of widths 64..4096 under the ``ntk`` and ``mup``
   parameterizations (vmapped over seeds), measures the relative Frobenius
   error between their empirical NNGP (conditioned on the hidden layers, see
   `kernels.empirical.conditional_nngp_fn`) and NTK and ``kernel_fn``'s, and fits its rate
   in width (theory: width^-1/2, Lee et al. 2019, Sec. 2; Hanin & Nica 2019);
2. trains them with full-batch gradient descent under the same parameterization
   (`kernels.optim.sgd`) and measures the relative change of the empirical NTK:
   it shrinks like width^-1/2 under ``ntk`` (lazy training, Jacot et al. 2018)
   and stays of order one under ``mup`` (feature learning, Yang & Hu 2021);
3. compares the trained networks' outputs on held-out points with the
   linearised prediction ``kernels.predict.gradient_descent_mse`` of the
   infinite-width NTK from the same initial outputs (Lee et al. 2019, Thm. 2.1:
   the gap closes under ``ntk``; under ``mup`` features learn and it does not).

The NTK's relative change under ``ntk`` is bounded by width^-1/2 and is expected
to fall like width^-1 (Dyer & Gur-Ari 2020, Sec. 3); the run prints what it measures.

With ``cnn_widths`` the same measurements run on a CNN (the digits as 8x8 images:
3x3 SAME convolutions of that many channels, ReLU, global average pooling, a dense
readout), whose kernels carry the spatial covariance (Novak et al. 2019; Garriga-Alonso
et al. 2019); its series are named ``cnn/<parameterization>``.

It writes one folder: config.json, metrics.jsonl, summary.json, PNG plots and
summary.md, and prints the fitted rates with their 95% intervals
(`kernels.slopes.loglog_fit`). A rerun skips finished widths, and one with more
widths or parameterizations computes only the new ones.

  python -m kernels.width_check [--config=kernels/configs/width_check.py]
      [--config.widths=64,256,1024 --config.seeds=2 ...] [--out=runs/width_check]

(`kernels.program`: the config file's fields are the options; a bad one ends the
program with one line naming it, before any work or write.)
"""
from __future__ import annotations

import functools
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from kernels import optim, predict, program, runs, slopes, stax
from kernels import parameterization as pz
from kernels.empirical import conditional_nngp_fn, empirical_ntk_fn
from kernels.stax import named




# The activations the width check runs and the hidden W_std of each (He's gain for the
# rectifiers).
ACTIVATIONS = {"relu": 2.0 ** 0.5, "erf": 1.0, "gelu": 2.0 ** 0.5, "tanh": 1.0}


def load_data(name: str, n_points: int, seed: int, n_test: int = 0, images: bool = False):
  """(x, y, x_test, y_test): inputs scaled to per-feature second moment 1, +-1 targets.

  With ``images`` the digits come as (n, 8, 8, 1) images (``dataset="digits"`` only)."""
  rng = np.random.RandomState(seed)
  n = n_points + n_test
  if name == "digits":
    from sklearn.datasets import load_digits
    d = load_digits()
    idx = rng.choice(len(d.target), n, replace=False)
    x = d.data[idx].astype(np.float64) - d.data.mean(0)
    y = (d.target[idx] >= 5).astype(np.float64) * 2 - 1
  else:
    x = rng.randn(n, 16)
    y = np.sign(x[:, 0] * x[:, 1] + 0.5 * x[:, 2])
  x = x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True))
  if images:
    if name != "digits":
      raise ValueError(f"the CNN case needs dataset='digits' (8x8 images), got {name!r}")
    x = x.reshape(-1, 8, 8, 1)
  x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y[:, None], jnp.float32)
  return x[:n_points], y[:n_points], x[n_points:], y[n_points:]


def build(width: int, depth: int, activation: str, parameterization,
          architecture: str = "mlp") -> stax.Layer:
  """The MLP, or the CNN (``depth`` 3x3 SAME convolutions of ``width`` channels, global
  average pooling, dense readout), under ``parameterization``."""
  w_std = ACTIVATIONS[activation]
  act = functools.partial(named.activation_layer, activation)
  if architecture == "mlp":
    return stax.mlp([width] * depth, act(), 1, parameterization=parameterization, W_std=w_std,
                    readout_W_std=1.0)
  layers = []
  for _ in range(depth):
    layers += [stax.Conv(width, (3, 3), padding="SAME", W_std=w_std,
                         parameterization=parameterization), act()]
  return stax.serial(*layers, stax.GlobalAvgPool(),
                     stax.Dense(1, W_std=1.0, parameterization=parameterization))


def series(architecture: str, parameterization: str) -> str:
  """The name of one measured series: ``ntk`` (MLP) or ``cnn/ntk``."""
  return parameterization if architecture == "mlp" else f"{architecture}/{parameterization}"


def rel_err(a, b):
  return jnp.linalg.norm(a - b) / jnp.linalg.norm(b)


def init_errors(net: stax.Layer, ntk_fn, x, k, keys, chunk: int):
  """Relative errors of the empirical NNGP and of ``ntk_fn`` of one network per key
  against ``k``.

  The networks are sampled and measured ``chunk`` at a time (`jax.lax.map`), so that many
  seeds of a wide network never hold all their parameters at once."""
  init_fn, apply_fn, _ = net
  nngp_fn = conditional_nngp_fn(apply_fn)

  def one(key):
    p = init_fn(key, x.shape)[1]
    return rel_err(nngp_fn(x, None, p), k.nngp), rel_err(ntk_fn(x, None, p), k.ntk)

  nngp, ntk = jax.jit(lambda ks: jax.lax.map(one, ks, batch_size=chunk))(keys)
  return np.asarray(nngp), np.asarray(ntk)


def measure(net: stax.Layer, x, y, x_test, keys, lr: float, steps: int, init_keys=None):
  """Kernels at init, training, NTK change and distance to the linearised prediction.

  ``keys`` seed the trained networks; the kernel errors at initialisation are measured on
  the networks of ``init_keys`` (default ``keys``): they need no training, so many more
  seeds are cheap, and the relative error of a kernel dominated by a few eigenvalues (the
  CNN's, after global pooling) is spread too widely for a few seeds to fix its rate."""
  init_fn, apply_fn, kernel_fn = net
  k = kernel_fn(x, None, ("nngp", "ntk"))
  k_test = kernel_fn(x_test, x, "ntk")
  params = jax.vmap(lambda key: init_fn(key, x.shape)[1])(keys)
  one = jax.tree_util.tree_map(lambda a: a[0], params)
  lrs = optim.learning_rates(net, one)
  ntk_fn = empirical_ntk_fn(apply_fn, implementation="structured", learning_rates=lrs)
  nngp_err, ntk_err = init_errors(net, ntk_fn, x, k,
                                  keys if init_keys is None else init_keys, chunk=len(keys))
  opt = optim.sgd(net, lr)

  @jax.jit
  def run(params):
    f0 = jax.vmap(lambda p: apply_fn(p, x))(params)
    ntk0 = jax.vmap(lambda p: ntk_fn(x, None, p))(params)
    loss_fn = lambda p: 0.5 * jnp.mean(jnp.sum((apply_fn(p, x) - y) ** 2, -1))

    def step(carry, _):
      p, s = carry
      loss, g = jax.vmap(jax.value_and_grad(loss_fn))(p)
      u, s = jax.vmap(opt.update)(g, s, p)
      return (jax.vmap(lambda a, b: jax.tree_util.tree_map(jnp.add, a, b))(p, u), s), loss

    (pT, _), losses = jax.lax.scan(step, (params, jax.vmap(opt.init)(params)), None,
                                   length=steps)
    g0 = jax.vmap(lambda p: apply_fn(p, x_test))(params)
    gT = jax.vmap(lambda p: apply_fn(p, x_test))(pT)
    ntkT = jax.vmap(lambda p: ntk_fn(x, None, p))(pT)
    return f0, g0, ntk0, losses, gT, ntkT

  f0, g0, ntk0, losses, gT, ntkT = run(params)
  lin = jax.vmap(lambda f, g: predict.gradient_descent_mse(k.ntk, y, lr)(
      fx_train_0=f, fx_test_0=g, k_test_train=k_test, steps=steps)[1])(f0, g0)
  per_seed = lambda fn, *a: np.asarray(jax.vmap(fn)(*a))
  return {
      "nngp_err": nngp_err,
      "ntk_err": ntk_err,
      "ntk_change": per_seed(rel_err, ntkT, ntk0),
      "lin_dist": per_seed(lambda a, b: jnp.linalg.norm(a - b) / jnp.linalg.norm(b), gT, lin),
      "final_loss": np.asarray(losses[-1]),
      "loss_curve": np.asarray(jnp.mean(losses, axis=1)),
  }


def learning_rate(x, depth, activation, fraction, architecture="mlp", parameterization="ntk"):
  """fraction / lambda_max(Theta/P) of the series' own infinite-width NTK (Lee et al. 2019,
  eq. 9: gradient descent on the linearised network is stable below 2 / lambda_max).

  Each series takes the rate from its own kernel: the MLP's kernel is the same under ntk
  and mup, but the CNN's mup kernel is 3x larger, and the ntk rate would put its
  linearised prediction beyond the stability edge."""
  k = build(8, depth, activation, parameterization, architecture).kernel_fn(x, None, "ntk")
  lam = float(jnp.linalg.eigvalsh(k / x.shape[0])[-1])
  return fraction / lam


def run_experiment(out: str, widths: Sequence[int], parameterizations: Sequence[str], seeds: int,
                   n_points: int, depth: int, activation: str, steps: int, lr_fraction: float,
                   dataset: str, seed: int, progress: bool = True,
                   cnn_widths: Sequence[int] = (), init_seeds: int | None = None,
                   cnn_init_seeds: int | None = None) -> dict:
  """Runs (or resumes) the experiment; returns the summary dict also written to disk.

  ``seeds`` networks per width are trained; the kernel errors at initialisation are
  measured on ``init_seeds`` networks (``cnn_init_seeds`` for the CNN; default ``seeds``),
  the trained ones among them."""
  from tqdm import tqdm
  config = dict(widths=list(widths), parameterizations=list(parameterizations), seeds=seeds,
                n_points=n_points, depth=depth, activation=activation, steps=steps,
                lr_fraction=lr_fraction, dataset=dataset, seed=seed)
  n_init = {}
  for arch, name, n in (("mlp", "init_seeds", init_seeds), ("cnn", "cnn_init_seeds",
                                                           cnn_init_seeds)):
    config[name] = n_init[arch] = max(seeds, n or seeds)
  if cnn_widths:
    config["cnn_widths"] = list(cnn_widths)
  runs.check_resumable(out, config, EXTENDABLE)
  rd = runs.RunDir(out)
  rd.start(config, jax_version=jax.__version__, backend=jax.default_backend())
  recorded = {r["key"]: r.get("lr") for r in rd.records() if "key" in r}
  lrs = {}
  for arch, arch_widths in (("mlp", widths), ("cnn", cnn_widths)):
    if not arch_widths:
      continue
    x, y, x_test, _ = load_data(dataset, n_points, seed, n_test=n_points, images=arch == "cnn")
    for p in parameterizations:
      lrs[series(arch, p)] = learning_rate(x, depth, activation, lr_fraction, arch, p)
    # A record is reused only if it was trained at this series' rate (folders written when
    # every series took the ntk kernel's rate are recomputed where the rates differ).
    todo = [(p, w) for p in parameterizations for w in arch_widths
            if not np.isclose(recorded.get(f"{series(arch, p)}/{w}", np.nan),
                              lrs[series(arch, p)], rtol=1e-6)]
    for p, w in tqdm(todo, desc=f"{arch} widths", disable=not progress):
      lr = lrs[series(arch, p)]
      t0 = time.time()
      key = jax.random.fold_in(jax.random.PRNGKey(seed), w)
      keys = jax.random.split(key, seeds)
      more = jax.random.split(jax.random.fold_in(key, 1), n_init[arch] - seeds)
      m = measure(build(w, depth, activation, pz.get(p), arch), x, y, x_test, keys, lr, steps,
                  init_keys=jnp.concatenate([keys, more]))
      name = series(arch, p)
      rec = {"key": f"{name}/{w}", "series": name, "parameterization": p, "width": w,
             "seconds": time.time() - t0, "lr": lr}
      for q, v in m.items():
        rec[q] = np.asarray(v).tolist()
      rd.append(rec)
  names = [series(a, p) for a, ws in (("mlp", widths), ("cnn", cnn_widths)) if ws
           for p in parameterizations]
  summary = summarise(rd.records(), names, widths, cnn_widths)
  rd.write_json("summary.json", summary)
  plot(rd, summary)
  rd.write_text("summary.md", summary_markdown(config, summary, lrs))
  return summary


RATES = ("nngp_err", "ntk_err", "ntk_change", "lin_dist")


def summarise(records, names, widths, cnn_widths=()) -> dict:
  """Per series (``ntk``, ``cnn/mup``, ...): means, errors and fitted rates against width.

  A rate is the least-squares slope of log(value) of every network against log(width)
  (`kernels.slopes.loglog_fit`): at leading order each value is width^rate times a random
  factor whose law does not depend on width, so the slope estimates the rate."""
  out = {}
  for p in names:
    ws = cnn_widths if p.startswith("cnn/") else widths
    recs = sorted((r for r in records if r.get("series", r["parameterization"]) == p
                   and r["width"] in ws), key=lambda r: r["width"])
    ws = [r["width"] for r in recs]
    entry = {"widths": ws}
    for q in RATES:
      means = [float(np.mean(r[q])) for r in recs]
      sems = [float(np.std(r[q]) / np.sqrt(len(r[q]))) for r in recs]
      # One point per network, not per width: the interval then rests on the spread of
      # the networks (widths * seeds - 2 degrees of freedom, not widths - 2).
      x = [w for w, r in zip(ws, recs) for _ in r[q]]
      fit = slopes.loglog_fit(x, [v for r in recs for v in r[q]]) if len(ws) >= 2 else None
      entry[q] = {"mean": means, "sem": sems, **({
          "slope": fit.slope, "intercept": fit.intercept, "low": fit.low, "high": fit.high}
          if fit else dict.fromkeys(("slope", "intercept", "low", "high"), float("nan")))}
    entry["final_loss"] = [float(np.mean(r["final_loss"])) for r in recs]
    entry["loss_curves"] = [r["loss_curve"] for r in recs]
    out[p] = entry
  return out


def plot(rd: runs.RunDir, summary: dict) -> None:
  titles = {"nngp_err": "NNGP at init\n|K_N - K| / |K|", "ntk_err": "NTK at init\n|T_N - T| / |T|",
            "ntk_change": "NTK change in training\n|T_t - T_0| / |T_0|",
            "lin_dist": "test outputs vs linearised GD\n|f_t - f_lin| / |f_lin|"}
  fig, axes = runs.figure(1, 4, figsize=(18, 4.4), layout="constrained")
  for ax, q in zip(axes, RATES):
    for p, e in summary.items():
      ws = np.asarray(e["widths"])
      ax.errorbar(ws, e[q]["mean"], yerr=e[q]["sem"], marker="o", capsize=2,
                  label=f"{p}: slope {e[q]['slope']:.2f}")
    ax.plot(ws, np.asarray(e[q]["mean"])[0] * (ws / ws[0]) ** -0.5, "k--", lw=0.8,
            label="width^-1/2")
    ax.set(xscale="log", yscale="log", xlabel="width (hidden units or channels)",
           ylabel="relative distance")
    ax.set_title(titles[q], fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
  rd.save_figure(fig, "rates.png")
  fig, axes = runs.figure(1, len(summary), figsize=(6 * len(summary), 4), squeeze=False)
  for ax, (p, e) in zip(axes[0], summary.items()):
    for w, c in zip(e["widths"], e["loss_curves"]):
      ax.plot(c, label=f"N={w}")
    ax.set(yscale="log", xlabel="step", ylabel="train loss", title=f"{p}: training loss")
    ax.legend(fontsize=8)
  rd.save_figure(fig, "loss_curves.png")


def summary_markdown(config, summary, lrs) -> str:
  nets = f"depth {config['depth']} {config['activation']} MLP"
  if config.get("cnn_widths"):
    nets += (f" and CNN ({config['depth']} 3x3 SAME convolutions on 8x8 images, global "
             "average pooling; series cnn/...)")
  lines = ["# Theory against finite width", "",
           f"Data: {config['dataset']} ({config['n_points']} points); {nets}; "
           f"{config['seeds']} trained networks per width (kernel errors at initialisation: "
           f"{config['init_seeds']} networks"
           + (f", CNN {config['cnn_init_seeds']}"
              if config.get("cnn_widths") else "")
           + f"); {config['steps']} GD steps at lr "
           + ", ".join(f"{lr:.4g} ({a})" for a, lr in lrs.items()) + ".", "",
           "Fitted exponents in width (least squares on the logarithm of every network's "
           "value), with their 95% intervals (theory in brackets):", "",
           "| parameterization | NNGP error (-0.5) | NTK error (-0.5) | NTK change (ntk: -0.5 to -1, "
           "mup: 0) | test gap to linearised GD (ntk: < 0, mup: 0) |", "|---|---|---|---|---|"]
  for p, e in summary.items():
    lines.append(f"| {p} | " + " | ".join(rate_text(e[q], "{:.3f}") for q in RATES) + " |")
  lines += ["", "Relative NTK change at the largest width: " + ", ".join(
      f"{p} {e['ntk_change']['mean'][-1]:.3g}" for p, e in summary.items() if e["widths"]), "",
      "![rates](rates.png)", "", "![loss](loss_curves.png)", ""]
  return "\n".join(lines)


def rate_text(rate: dict, fmt: str = "{:+.3f}") -> str:
  """A fitted exponent with its interval: ``-0.523 [-0.548, -0.498]``."""
  text = fmt.format(rate["slope"])
  if np.isfinite(rate.get("low", np.nan)):
    text += " [" + fmt.format(rate["low"]) + ", " + fmt.format(rate["high"]) + "]"
  return text


EXTENDABLE = ("widths", "parameterizations", "cnn_widths")


def check(config) -> None:
  """Raises ValueError naming the first bad config field."""
  program.ints_field(config, "widths", minimum=1)
  if "cnn_widths" in config and program.ints_field(config, "cnn_widths", allow_empty=True):
    if config.dataset != "digits":
      raise ValueError(f"config.dataset must be 'digits' when config.cnn_widths is set (the CNN "
                       f"reads 8x8 images), got {config.dataset!r}.")
  for p in program.names_field(config, "parameterizations"):
    try:
      pz.get(p)
    except (TypeError, ValueError) as e:
      raise ValueError(f"config.parameterizations: {e}") from None
  for name, least in (("seeds", 1), ("n_points", 2), ("depth", 1), ("steps", 1), ("seed", 0)):
    program.int_field(config, name, minimum=least)
  for name in ("init_seeds", "cnn_init_seeds"):
    if name in config and program.int_field(config, name, minimum=1) < config.seeds:
      raise ValueError(f"config.{name} must be >= config.seeds (the trained networks are among "
                       f"them), got {config[name]} < {config.seeds}.")
  program.choice_field(config, "activation", tuple(ACTIVATIONS))
  program.choice_field(config, "dataset", ("digits", "synthetic"))
  program.number_field(config, "lr_fraction", positive=True)


def run(config, out: str, progress: bool = True) -> dict:
  """Runs (or resumes) the experiment of ``config`` in folder ``out``; prints the rates."""
  check(config)
  summary = run_experiment(out, list(config.widths),
                           program.names_field(config, "parameterizations"),
                           config.seeds, config.n_points, config.depth, config.activation,
                           config.steps, config.lr_fraction, config.dataset, config.seed,
                           progress=progress, cnn_widths=list(config.get("cnn_widths", ())),
                           init_seeds=config.get("init_seeds", None),
                           cnn_init_seeds=config.get("cnn_init_seeds", None))
  print(f"\nResults in {out}. Fitted exponents in width with 95% intervals (theory: kernel "
        "errors -0.5; NTK change -0.5 to -1 under ntk, 0 under mup):")
  for p, e in summary.items():
    print(f"  {p:>8}: NNGP error {rate_text(e['nngp_err'])}  NTK error "
          f"{rate_text(e['ntk_err'])}  NTK change {rate_text(e['ntk_change'])} "
          f"(at N={e['widths'][-1]}: {e['ntk_change']['mean'][-1]:.3g})  distance to "
          f"linearised {rate_text(e['lin_dist'])}")
  return summary


PROGRAM = program.Program(name="kernels.width_check",
                          default_config="kernels/configs/width_check.py", out_name="width_check",
                          check=check, run=run, extendable=EXTENDABLE)


if __name__ == "__main__":
  program.main(PROGRAM)
