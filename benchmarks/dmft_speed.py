"""Speed of the two-layer DMFT solver against the reference algorithm.

  python -m benchmarks.dmft_speed

Measures, in one process and at the same T, P and sample count: the
reference notebook algorithm (`benchmarks.dmft_reference`: dense (T P)^2
kernels, eigendecomposition sampling, fixed outer iterations, Python time
loop) and `dmft.solve_two_layer` (jit end to end, lax.scan over time,
batched samples, control variates); the agreement of their loss curves
against the Monte Carlo spread of the reference; and how the solver's cost
grows with T and P. Writes benchmarks/results/dmft_speed.json.
"""
import json
import os
import platform
import statistics
import time

import jax
import numpy as np

import dmft
from benchmarks import dmft_reference
from dmft import data

OUT = os.path.join(os.path.dirname(__file__), "results", "dmft_speed.json")


def _time(fn, repeats):
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(jax.tree_util.tree_leaves(out.loss))
    times.append(time.perf_counter() - t0)
  return statistics.median(times), times


def main():
  p, steps, n, lr, gamma0, n_outer = 12, 40, 2048, 0.2, 1.0, 20
  x, y, _, _ = data.synthetic(n_train=p, n_test=1, dim=6, seed=0)

  def ours(seed=0, **kw):
    args = dict(activation="relu", gamma0=gamma0, lr=lr, steps=steps,
                n_samples=n, seed=seed)
    args.update(kw)
    return dmft.solve_two_layer(x, y, **args)

  t0 = time.perf_counter()
  ours(seed=0)
  cold = time.perf_counter() - t0
  warm, warm_all = _time(lambda: ours(seed=1), 7)

  ref_times, ref_losses = [], []
  for seed in (0, 1):
    t0 = time.perf_counter()
    loss, _, _ = dmft_reference.solve_two_layer_reference(
        x, y, gamma0=gamma0, lr=lr, steps=steps, n_samples=n,
        n_outer=n_outer, seed=seed)
    ref_times.append(time.perf_counter() - t0)
    ref_losses.append(loss)
  ref_time = statistics.median(ref_times)
  accurate = ours(seed=2, n_samples=2 ** 17).loss
  mine = ours(seed=1).loss
  ref_spread = float(np.max(np.abs(ref_losses[0] - ref_losses[1])))
  agreement = dict(
      max_abs_diff_ours_vs_reference=float(np.max(np.abs(
          mine - ref_losses[0]))),
      max_abs_diff_reference_seeds=ref_spread,
      max_abs_diff_ours_vs_ours_2e17=float(np.max(np.abs(mine - accurate))),
      max_abs_diff_reference_vs_ours_2e17=float(np.max(np.abs(
          ref_losses[0] - accurate))),
      ours_mc_error_max=float(np.max(ours(seed=1).mc_error)),
      loss_ours=mine.tolist(), loss_reference=ref_losses[0].tolist())

  scaling = {"T": {}, "P": {}}
  for t in (25, 50, 100, 200):
    med, _ = _time(lambda t=t: ours(steps=t), 1)  # compile
    med, _ = _time(lambda t=t: ours(steps=t, seed=3), 3)
    scaling["T"][t] = med
  for pp in (8, 16, 32, 64):
    xp, yp, _, _ = data.synthetic(n_train=pp, n_test=1, dim=6, seed=0)
    run = lambda s, xp=xp, yp=yp: dmft.solve_two_layer(  # noqa: E731
        xp, yp, gamma0=gamma0, lr=lr, steps=steps, n_samples=n, seed=s)
    _time(lambda: run(0), 1)
    med, _ = _time(lambda: run(3), 3)
    scaling["P"][pp] = med
  exps = {k: dmft.fit_power_law(list(v.keys()), list(v.values()))[0]
          for k, v in scaling.items()}

  out = dict(
      machine=dict(platform=platform.platform(), processor=platform.processor(),
                   cpus=os.cpu_count(), python=platform.python_version(),
                   devices=[str(d) for d in jax.devices()]),
      versions=dict(jax=jax.__version__, numpy=np.__version__),
      problem=dict(P=p, steps=steps, n_samples=n, lr=lr, gamma0=gamma0,
                   activation="relu", reference_outer_iterations=n_outer),
      ours_seconds=dict(median_warm=warm, all_warm=warm_all,
                        first_call_with_compile=cold),
      reference_seconds=dict(median=ref_time, all=ref_times),
      speedup_warm=ref_time / warm,
      speedup_including_compile=ref_time / cold,
      agreement=agreement,
      scaling_seconds={k: {str(a): b for a, b in v.items()}
                       for k, v in scaling.items()},
      scaling_exponents=exps)
  os.makedirs(os.path.dirname(OUT), exist_ok=True)
  tmp = OUT + ".tmp"
  with open(tmp, "w") as f:
    json.dump(out, f, indent=2)
  os.replace(tmp, OUT)
  print(json.dumps({k: out[k] for k in ("ours_seconds", "reference_seconds",
                                         "speedup_warm",
                                         "speedup_including_compile",
                                         "scaling_exponents")}, indent=2))
  print({k: v for k, v in agreement.items() if not k.startswith("loss")})


if __name__ == "__main__":
  main()
