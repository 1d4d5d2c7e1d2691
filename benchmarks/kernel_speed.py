"""NNGP + NTK of deep MLPs (ReLU, Erf, Gelu, Sin): kernels.stax against neural-tangents and one Gram product.

  python -m benchmarks.kernel_speed [--suite=quick|full] [--out=DIR] [--no_reference]

Network: 5 x (Dense(512, W_std=1.5, b_std=0.05) -> activation) -> Dense(1), NTK
parameterization, the activation ReLU, Erf, Gelu (arcsine-type closed forms) or Sin
(a few exponentials per entry: both libraries near the Gram product's time);
``kernel_fn(x, None, get=("nngp", "ntk"))`` in float32 on 4000
seeded Gaussian inputs of dimension 784. Ours, neural-tangents (in its own
process) and the jitted Gram product ``x @ x.T`` (the floor every kernel pays)
are timed in alternation after a first call each (reported: compilation
included). Values: ours against neural-tangents on the first 200 points, and
both against our float64 kernels. The full suite adds repeats and a sweep of n
(time and peak memory of ours) up to 16,000.
"""
from __future__ import annotations

import resource
import subprocess
import sys
import time

import numpy as np

from benchmarks import harness

TITLE = "MLP NNGP/NTK (ReLU, Erf, Gelu, Sin), depth 5, n=4000, d=784, float32"
W_STD, B_STD = 1.5, 0.05
GET = ("nngp", "ntk")
ACTIVATIONS = ("Relu", "Erf", "Gelu", "Sin")
N, D, DEPTH, WIDTH, CHECK = 4000, 784, 5, 512, 200


def network(activation: str = "Relu", depth: int = DEPTH, width: int = WIDTH,
            act_kwargs=None, w_std: float = W_STD):
  """depth x (Dense(width) -> activation(**act_kwargs)) -> Dense(1)."""
  from kernels import stax  # pylint: disable=g-import-not-at-top
  layers = []
  for _ in range(depth):
    layers += [stax.Dense(width, W_std=w_std, b_std=B_STD),
               getattr(stax, activation)(**(act_kwargs or {}))]
  layers.append(stax.Dense(1, W_std=w_std, b_std=B_STD))
  return stax.serial(*layers)


def inputs(n: int, d: int = D, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def float64_values(kernel_fn, x_np) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  with jax.enable_x64(True):
    k = kernel_fn(jnp.asarray(x_np, jnp.float64), None, GET)
    return {g: np.asarray(getattr(k, g)) for g in GET}


def one_activation(ctx, activation: str, x_np, gram_time, act_kwargs=None, w_std=W_STD,
                   label=None, gram_row=True) -> tuple:
  """Rows of one activation: against neural-tangents and (``gram_row``) one Gram product."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  kernel_fn = network(activation, act_kwargs=act_kwargs, w_std=w_std).kernel_fn
  label = label or activation
  x = jnp.asarray(x_np)
  ours = harness.timer(lambda: kernel_fn(x, None, GET))
  first = dict(ours=ours())
  contenders = dict(ours=ours, gram=gram_time)
  worker = ctx.worker()
  if worker is not None:
    path = str(ctx.tmp / "x.npz")
    np.savez(path, x=x_np)
    setup = worker.call("kernel_setup", inputs_npz=path, depth=DEPTH, width=WIDTH,
                        W_std=w_std, b_std=B_STD, activation=activation,
                        activation_kwargs=act_kwargs or {})
    first["reference"] = setup["first_call_s"]
    contenders["neural_tangents"] = lambda: worker.call("kernel_time", repeats=1)[0]
  repeats = 7 if ctx.full else 3
  times = harness.interleave(contenders, repeats, log=ctx.log)
  st = {k: harness.stats(v) for k, v in times.items()}
  details = dict(first_call_s=first, times_s=times)
  k32 = kernel_fn(x[:CHECK], None, GET)
  exact = float64_values(kernel_fn, x_np[:CHECK])
  details["ours_vs_float64"] = {g: harness.max_rel_diff(getattr(k32, g), exact[g]) for g in GET}
  rows = []
  max_diff = None
  if worker is not None:
    ref = np.load(worker.call("kernel_values", m=CHECK, out_npz=str(ctx.tmp / "nt.npz")))
    details["neural_tangents_vs_float64"] = {g: harness.max_rel_diff(ref[g], exact[g])
                                             for g in GET}
    details["ours_vs_neural_tangents"] = {g: harness.max_rel_diff(getattr(k32, g), ref[g])
                                          for g in GET}
    max_diff = max(details["ours_vs_neural_tangents"].values())
    gram_note = ("" if gram_row else
                 f"; ours = {st['ours']['median'] / st['gram']['median']:.1f} Gram products")
    rows.append(harness.row(
        f"{label} depth {DEPTH}, n={len(x_np)}, d={D}", st["ours"], st["neural_tangents"],
        reference_name="neural-tangents", first_call=first, max_diff=max_diff, target=3.0,
        note=f"max diff on {CHECK} points; vs float64: ours "
             f"{max(details['ours_vs_float64'].values()):.1g}, neural-tangents "
             f"{max(details['neural_tangents_vs_float64'].values()):.1g}" + gram_note))
  if gram_row or worker is None:
    rows.append(harness.row(f"{label}: ours against one Gram product x x^T", st["ours"],
                            st["gram"], reference_name="Gram",
                            first_call=dict(ours=first["ours"]), target=1 / 3,
                            target_text="ours <= 3x Gram", note="ratio = Gram / ours"))
  return rows, details


def sweep_point(activation: str, n: int) -> dict:
  """Runs in a fresh process: first call, median of 3 later calls, peak resident memory."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  kernel_fn = network(activation).kernel_fn
  x = jnp.asarray(inputs(n))
  t = harness.timer(lambda: kernel_fn(x, None, GET))
  first = t()
  later = harness.stats([t() for _ in range(3)])
  return dict(n=n, first_call_s=first, later=later,
              peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)


def _sweep_in_process(activation: str, n: int) -> dict:
  import json  # pylint: disable=g-import-not-at-top
  code = ("import json; from benchmarks.kernel_speed import sweep_point; "
          f"print(json.dumps(sweep_point({activation!r}, {n})))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x_np = inputs(N)
  x = jnp.asarray(x_np)
  gram = jax.jit(lambda a: a @ a.T)
  gram_time = harness.timer(lambda: gram(x))
  gram_time()
  rows, details = [], {}
  for act in ACTIVATIONS:
    r, d = one_activation(ctx, act, x_np, gram_time)
    rows += r
    details[act] = d
  if ctx.full:
    sweep = []
    for n in (1000, 4000, 8000, 16000):
      t0 = time.perf_counter()
      sweep.append(_sweep_in_process("Relu", n))
      ctx.log(f"sweep n={n}: {sweep[-1]['later']['median']:.3f} s, "
              f"{sweep[-1]['peak_rss_gb']:.2f} GB ({time.perf_counter() - t0:.0f} s)")
    fit = __import__("kernels.slopes", fromlist=["loglog_fit"]).loglog_fit(
        [s["n"] for s in sweep], [s["later"]["median"] for s in sweep])
    details["sweep_relu"] = dict(points=sweep, slope=fit.slope, interval=[fit.low, fit.high])
    for s in sweep:
      rows.append(harness.row(f"Relu n={s['n']} (time, peak memory {s['peak_rss_gb']:.1f} GB)",
                              s["later"], first_call=dict(ours=s["first_call_s"]),
                              note=f"time ~ n^{fit.slope:.2f}" if s is sweep[-1] else ""))
  return dict(rows=rows, details=details)


if __name__ == "__main__":
  harness.case_main(run)
