"""Empirical (finite-width) NTK, full output block: kernels.empirical vs neural-tangents.

  python -m benchmarks.empirical_speed [--repeats 7] [--budget 10] [--no-reference]

Network: 3 x (Dense(512) -> Relu) -> Dense(10), NTK parameterization, W_std=1.5,
b_std=0.05, float32, 100 inputs of dimension 32 (a small input dimension keeps the
Jacobian-based implementations within memory and minutes; the hidden 512 x 512
layers hold 96% of the 545k parameters either way). ``trace_axes=()``: the full
(100, 100, 10, 10) block. Both libraries get identical weights (passed through an
npz file) and the same inputs.

Every implementation is compiled ahead of time (compilation is not timed), so
its first execution is already a measurement. Repeats are interleaved round-robin
over all implementations of both libraries; an implementation stops repeating
once its time spent exceeds ``--budget`` seconds (at least one run each), so the
slow Jacobian contractions run once or twice and the fast ones ``--repeats`` times.
Writes benchmarks/results/empirical_speed.json.
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
from kernels.empirical import IMPLEMENTATIONS, empirical_ntk_fn

N, D, WIDTH, DEPTH, OUT = 100, 32, 512, 3, 10
W_STD, B_STD = 1.5, 0.05
NT_IMPLEMENTATIONS = {1: "jacobian_contraction", 2: "ntk_vector_products",
                      3: "structured_derivatives"}


def network():
  layers = []
  for _ in range(DEPTH):
    layers += [stax.Dense(WIDTH, W_std=W_STD, b_std=B_STD), stax.Relu()]
  layers.append(stax.Dense(OUT, W_std=W_STD, b_std=B_STD))
  return stax.serial(*layers)


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _save_params(params, path):
  dense = [p for p in params if p != ()]
  arrays = {}
  for i, (W, b) in enumerate(dense):
    arrays[f"W{i}"], arrays[f"b{i}"] = np.asarray(W), np.asarray(b)
  np.savez(path, **arrays)


def run(repeats=7, budget_s=10.0, reference=True, verbose=True):
  """Runs the benchmark; returns the result dictionary (also written to results/)."""
  log = (lambda *a: print(*a, file=sys.stderr, flush=True)) if verbose else (lambda *a: None)
  init_fn, apply_fn, _ = network()
  _, params = init_fn(jax.random.PRNGKey(0), (N, D), jnp.float32)
  x_np = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
  x = jnp.asarray(x_np)
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
  result = dict(benchmark="empirical_speed", machine=benchmarks.machine_info(),
                versions=dict(main=benchmarks.main_versions()),
                setup=dict(n=N, d=D, depth=DEPTH, width=WIDTH, out_dim=OUT, W_std=W_STD,
                           b_std=B_STD, parameterization="ntk", dtype="float32",
                           trace_axes=[], vmap_axes=0, x2=None, parameters=n_params,
                           output_shape=[N, N, OUT, OUT], repeats=repeats,
                           budget_s_per_implementation=budget_s,
                           timing="ahead-of-time compiled; median of interleaved executions "
                           "with block_until_ready"))

  contenders = {}  # name -> callable returning one timing
  compile_s, values, failed = {}, {}, {}
  for impl in IMPLEMENTATIONS:
    fn = empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=impl)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda x, p, fn=fn: fn(x, None, p)).lower(x, params).compile()
    compile_s[f"ours/{impl}"] = time.perf_counter() - t0

    def timed(compiled=compiled, impl=impl):
      t0 = time.perf_counter()
      out = jax.block_until_ready(compiled(x, params))
      values.setdefault(f"ours/{impl}", np.asarray(out))
      return time.perf_counter() - t0
    contenders[f"ours/{impl}"] = timed
    log(f"[empirical_speed] compiled ours/{impl} in {compile_s[f'ours/{impl}']:.1f}s")

  worker = None
  tmp = tempfile.mkdtemp(prefix="empirical_speed_")
  try:
    if reference:
      log("[empirical_speed] starting the neural-tangents reference process")
      worker = reference_env.Worker()
      result["versions"]["reference"] = worker.call("versions")
      _save_params(params, os.path.join(tmp, "params.npz"))
      np.savez(os.path.join(tmp, "x.npz"), x=x_np)
      for impl, label in NT_IMPLEMENTATIONS.items():
        try:
          r = worker.call("empirical_setup", params_npz=os.path.join(tmp, "params.npz"),
                          inputs_npz=os.path.join(tmp, "x.npz"), depth=DEPTH, width=WIDTH,
                          out_dim=OUT, W_std=W_STD, b_std=B_STD, implementation=impl)
        except RuntimeError as e:  # e.g. internals of JAX that the reference's JAX lacks
          lines = [l.strip() for l in str(e).splitlines() if "Error" in l]
          last = lines[-1] if lines else str(e).strip().splitlines()[-1]
          failed[f"nt/{impl}_{label}"] = last
          log(f"[empirical_speed] nt/{impl}_{label} does not run: {last}")
          continue
        compile_s[f"nt/{impl}_{label}"] = r["compile_s"]
        contenders[f"nt/{impl}_{label}"] = (
            lambda impl=impl: worker.call("empirical_time", implementation=impl)[0])
        log(f"[empirical_speed] compiled nt/{impl}_{label} in {r['compile_s']:.1f}s")

    times = {k: [] for k in contenders}
    for r in range(repeats):
      for name, f in contenders.items():
        if times[name] and (len(times[name]) >= repeats or sum(times[name]) >= budget_s):
          continue
        times[name].append(f())
        log(f"[empirical_speed] round {r + 1}: {name} {times[name][-1]:.3f}s")

    if worker is not None:
      for impl, label in NT_IMPLEMENTATIONS.items():
        if f"nt/{impl}_{label}" in failed:
          continue
        path = worker.call("empirical_values", implementation=impl,
                           out_npz=os.path.join(tmp, f"nt{impl}.npz"))
        values[f"nt/{impl}_{label}"] = np.load(path)["ntk"]
  finally:
    if worker is not None:
      worker.close()
    shutil.rmtree(tmp, ignore_errors=True)

  med = {k: benchmarks.median(v) for k, v in times.items()}
  ours = {k: v for k, v in med.items() if k.startswith("ours/")}
  best_ours = min(ours, key=ours.get)
  result.update(compile_s=compile_s, times_s=times, median_s=med, fastest_ours=best_ours,
                failed=failed)
  ref_name = "ours/structured"
  agreement = {k: _rel(v, values[ref_name]) for k, v in values.items() if k != ref_name}
  result["agreement"] = dict(
      reference=ref_name, measure="max |K - K_ref| / max |K_ref| over the full block",
      max_rel_diff=agreement, shapes={k: list(v.shape) for k, v in values.items()})
  nt_med = {k: v for k, v in med.items() if k.startswith("nt/")}
  if nt_med:
    best_nt = min(nt_med, key=nt_med.get)
    result["fastest_neural_tangents"] = best_nt
    result["ratios"] = dict(
        neural_tangents_fastest_over_ours_fastest=nt_med[best_nt] / ours[best_ours],
        **{f"{best_nt}_over_{k}": nt_med[best_nt] / v for k, v in ours.items()})
  result["targets"] = dict(neural_tangents_fastest_over_ours_fastest=">= 10")
  path = benchmarks.write_json("empirical_speed", result)
  log(f"[empirical_speed] wrote {path}")
  return result


def summary(result) -> list:
  rows = [(f"empirical_speed: {k} median (s)", f"{v:.3f}")
          for k, v in result["median_s"].items()]
  if "ratios" in result:
    rows.append(("empirical_speed: NT fastest / ours fastest",
                 f"{result['ratios']['neural_tangents_fastest_over_ours_fastest']:.2f}"))
  worst = max(result["agreement"]["max_rel_diff"].values(), default=0.0)
  rows.append(("empirical_speed: max rel diff (all vs ours/structured)", f"{worst:.1e}"))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--repeats", type=int, default=7)
  p.add_argument("--budget", type=float, default=10.0,
                 help="seconds of repeats per implementation beyond its first run")
  p.add_argument("--no-reference", action="store_true",
                 help="skip neural-tangents (no reference environment needed)")
  a = p.parse_args(argv)
  res = run(a.repeats, a.budget, reference=not a.no_reference)
  for name, value in summary(res):
    print(f"{name:60s} {value}")


if __name__ == "__main__":
  main()
