"""NNGP + NTK of a deep ReLU MLP: kernels.stax vs neural-tangents vs one Gram product.

  python -m benchmarks.kernel_speed [--n 4000] [--repeats 7] [--no-reference]

Network: ``depth`` x (Dense(width) -> Relu) -> Dense(1), NTK parameterization,
W_std=1.5, b_std=0.05; ``kernel_fn(x, None, get=("nngp", "ntk"))`` in float32 on n
inputs of dimension 784. Timed after a warm-up call (compilation excluded), with
``block_until_ready``; the repeats of the three contenders are interleaved
(ours, neural-tangents in its own process, Gram) so that load from other
processes hits all of them alike, and medians are reported. The Gram product
``x @ x.T`` (jitted) is the floor: every kernel needs at least that.
Writes benchmarks/results/kernel_speed.json.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import benchmarks
from benchmarks import reference_env
from kernels import stax

W_STD, B_STD = 1.5, 0.05
GET = ("nngp", "ntk")


def network(depth: int, width: int):
  layers = []
  for _ in range(depth):
    layers += [stax.Dense(width, W_std=W_STD, b_std=B_STD), stax.Relu()]
  layers.append(stax.Dense(1, W_std=W_STD, b_std=B_STD))
  return stax.serial(*layers)


def inputs(n: int, d: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _timer(fn):
  def run():
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0
  return run


def _max_rel(a, b):
  """max |a - b| / max |b| and the largest entrywise |a - b| / |b|."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  scale = np.max(np.abs(b))
  entry = np.abs(a - b) / np.maximum(np.abs(b), 1e-30)
  return dict(max_abs_over_max_ref=float(np.max(np.abs(a - b)) / scale),
              max_entrywise_rel=float(np.max(entry)))


def value_check(kernel_fn, x_np, ref) -> dict:
  """float32 ours vs float32 neural-tangents, and each against our float64 kernels.

  Our float64 kernels agree with neural-tangents' float64 kernels to ~1e-15
  (tests/kernels/test_nt_reference.py), so they serve as the exact values. Errors
  are split into the diagonal (correlation exactly 1, where float32 arccos loses
  digits) and the off-diagonal entries.
  """
  k = kernel_fn(jnp.asarray(x_np), None, GET)
  with jax.enable_x64(True):
    k64 = kernel_fn(jnp.asarray(x_np, jnp.float64), None, GET)
    exact = dict(nngp=np.asarray(k64.nngp), ntk=np.asarray(k64.ntk))
  off = ~np.eye(len(x_np), dtype=bool)
  out = dict(points=len(x_np), dtype="float32")
  for name in GET:
    ours, nt32, ex = np.asarray(getattr(k, name)), ref[name], exact[name]
    out[name] = dict(
        ours_vs_neural_tangents=_max_rel(ours, nt32),
        ours_vs_float64=dict(diagonal=_max_rel(np.diag(ours), np.diag(ex)),
                             off_diagonal=_max_rel(ours[off], ex[off])),
        neural_tangents_vs_float64=dict(diagonal=_max_rel(np.diag(nt32), np.diag(ex)),
                                        off_diagonal=_max_rel(nt32[off], ex[off])))
  return out


def run(n=4000, d=784, depth=5, width=512, repeats=7, sweep=(500, 1000, 2000, 4000),
        check_points=200, reference=True, verbose=True):
  """Runs the benchmark; returns the result dictionary (also written to results/)."""
  log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if verbose else (lambda *a: None)
  result = dict(benchmark="kernel_speed", machine=benchmarks.machine_info(),
                versions=dict(main=benchmarks.main_versions()),
                setup=dict(n=n, d=d, depth=depth, width=width, W_std=W_STD, b_std=B_STD,
                           parameterization="ntk", dtype="float32", get=list(GET), x2=None,
                           repeats=repeats, timing="median of interleaved repeats after a "
                           "warm-up call, block_until_ready, compilation excluded"))
  x_np = inputs(n, d)
  x = jnp.asarray(x_np)
  kernel_fn = network(depth, width).kernel_fn
  gram = jax.jit(lambda a: a @ a.T)
  ours = _timer(lambda: kernel_fn(x, None, GET))
  floor = _timer(lambda: gram(x))

  worker = None
  if reference:
    log("[kernel_speed] starting the neural-tangents reference process")
    worker = reference_env.Worker()
  tmp = tempfile.mkdtemp(prefix="kernel_speed_")
  try:
    t0 = time.perf_counter()
    jax.block_until_ready(kernel_fn(x, None, GET))
    result["ours_first_call_s"] = time.perf_counter() - t0
    floor()
    if worker is not None:
      np.savez(os.path.join(tmp, "x.npz"), x=x_np)
      result["versions"]["reference"] = worker.call("versions")
      setup = worker.call("kernel_setup", inputs_npz=os.path.join(tmp, "x.npz"), depth=depth,
                          width=width, W_std=W_STD, b_std=B_STD)
      result["nt_first_call_s"] = setup["first_call_s"]

    times = dict(ours=[], gram=[], **({"neural_tangents": []} if worker else {}))
    for r in range(repeats):
      times["ours"].append(ours())
      if worker is not None:
        times["neural_tangents"] += worker.call("kernel_time", repeats=1)
      times["gram"].append(floor())
      log(f"[kernel_speed] repeat {r + 1}/{repeats}: " +
          ", ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()))
    med = {k: benchmarks.median(v) for k, v in times.items()}
    result["times_s"] = times
    result["median_s"] = med
    result["ratios"] = dict(ours_over_gram=med["ours"] / med["gram"])
    if worker is not None:
      result["ratios"]["neural_tangents_over_ours"] = med["neural_tangents"] / med["ours"]
      m = min(check_points, n)
      path = worker.call("kernel_values", m=m, out_npz=os.path.join(tmp, "nt.npz"))
      ref = np.load(path)
      result["value_check"] = value_check(kernel_fn, x_np[:m], ref)
  finally:
    if worker is not None:
      worker.close()
    shutil.rmtree(tmp, ignore_errors=True)

  sweep_res = []
  for m in sweep:
    xm = x[:m] if m <= n else jnp.asarray(inputs(m, d))
    f = _timer(lambda xm=xm: kernel_fn(xm, None, GET))
    g = _timer(lambda xm=xm: gram(xm))
    f()
    g()
    tf, tg = [], []
    for _ in range(max(5, repeats // 2)):
      tf.append(f())
      tg.append(g())
    sweep_res.append(dict(n=m, ours_median_s=benchmarks.median(tf),
                          gram_median_s=benchmarks.median(tg),
                          ours_over_gram=benchmarks.median(tf) / benchmarks.median(tg)))
    log(f"[kernel_speed] sweep n={m}: ours {sweep_res[-1]['ours_median_s']:.4f}s, "
        f"gram {sweep_res[-1]['gram_median_s']:.4f}s")
  result["sweep_ours"] = sweep_res
  result["targets"] = dict(neural_tangents_over_ours=">= 3", ours_over_gram="<= 3")
  path = benchmarks.write_json("kernel_speed", result)
  log(f"[kernel_speed] wrote {path}")
  return result


def summary(result) -> list:
  """Rows (name, value) for the summary table of run_all."""
  med, ratios = result["median_s"], result["ratios"]
  rows = [("kernel_speed: ours median (s)", f"{med['ours']:.3f}"),
          ("kernel_speed: gram median (s)", f"{med['gram']:.3f}"),
          ("kernel_speed: ours / gram", f"{ratios['ours_over_gram']:.2f}")]
  if "neural_tangents" in med:
    diff = result["value_check"]["ntk"]["ours_vs_neural_tangents"]["max_abs_over_max_ref"]
    rows += [("kernel_speed: neural-tangents median (s)", f"{med['neural_tangents']:.3f}"),
             ("kernel_speed: neural-tangents / ours", f"{ratios['neural_tangents_over_ours']:.2f}"),
             ("kernel_speed: max rel diff vs NT (ntk)", f"{diff:.1e}")]
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n", type=int, default=4000)
  p.add_argument("--d", type=int, default=784)
  p.add_argument("--depth", type=int, default=5)
  p.add_argument("--width", type=int, default=512)
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--sweep", type=lambda s: tuple(int(v) for v in s.split(",") if v),
                 default=(500, 1000, 2000, 4000))
  p.add_argument("--no-reference", action="store_true",
                 help="skip neural-tangents (no reference environment needed)")
  a = p.parse_args(argv)
  res = run(a.n, a.d, a.depth, a.width, a.repeats, a.sweep, reference=not a.no_reference)
  for name, value in summary(res):
    print(f"{name:45s} {value}")


if __name__ == "__main__":
  main()
