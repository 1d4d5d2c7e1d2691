"""DMFT solves, cold (first call, compilation included) and warm, against the reference algorithm.

  python -m benchmarks.dmft_speed [--suite=quick|full] [--out=DIR]

Two-layer: `dmft.solve_two_layer` (ReLU, muP, gamma0 = 1, lr 0.2, T = 40 steps,
P = 12 points in 6 dimensions, 2048 samples) against the published algorithm
as released in notebooks (`benchmarks.dmft_reference`: dense (T P)^2 kernels,
eigendecomposition sampling, a Python time loop, 20 outer iterations) at the
same T, P and samples. The cold call of ours runs in a fresh process, as a
researcher's first configuration does; warm calls are interleaved with the
reference's. Values: the largest difference of the two loss curves next to the
reference's own spread over two seeds. A third row is the cold call of the
next configuration (gamma0 = 1 after gamma0 = 0.5, same shapes) with the
compilation cache the programs keep (`kernels.compile_cache`). Deep: `dmft.solve_deep` (L = 2 hidden
ReLU layers, the settings of dmft/configs/deep.py: T = 12, P = 6 in 5
dimensions, 4096 samples), cold and warm, against the same algorithm for deep
networks (`benchmarks.dmft_deep_reference`: the deep field equations in a
Python time loop, dense kernels, Stein responses, 20 outer iterations, 4096
samples), values as for two layers. The full suite doubles the two-layer T and
the repeats.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from benchmarks import harness

TITLE = "DMFT two-layer and deep solves, cold and warm, vs the reference algorithm"
P, DIM, LR, GAMMA0, SAMPLES, OUTER = 12, 6, 0.2, 1.0, 2048, 20


def problem(kind: str, steps: int) -> dict:
  return dict(kind=kind, steps=steps, n_samples=SAMPLES if kind == "two_layer" else 1024)


def solve(kind: str, steps: int, seed: int, gamma0: float = GAMMA0):
  """One solve of ours; returns its loss curve."""
  import dmft  # pylint: disable=g-import-not-at-top
  from dmft import data  # pylint: disable=g-import-not-at-top
  x, y, _, _ = data.synthetic(n_train=P if kind == "two_layer" else 6, n_test=1,
                              dim=DIM if kind == "two_layer" else 5, seed=0)
  if kind == "two_layer":
    r = dmft.solve_two_layer(x, y, activation="relu", gamma0=gamma0, lr=LR, steps=steps,
                             n_samples=SAMPLES, seed=seed)
  else:  # the settings of dmft/configs/deep.py
    r = dmft.solve_deep(x, y, depth=2, activation="relu", gamma0=gamma0, lr=1.0, steps=steps,
                        n_samples=4096, n_response=128, seed=seed,
                        raise_on_nonconvergence=False)
  return np.asarray(r.loss)


def cold_call(kind: str, steps: int, gamma0: float = GAMMA0, cache=None) -> float:
  """First call in the current process (compilation included), in seconds; with ``cache``
  a folder of compiled programs (`kernels.compile_cache`, as the programs use it)."""
  if cache:
    from kernels import compile_cache  # pylint: disable=g-import-not-at-top
    compile_cache.enable(cache)
  t0 = time.perf_counter()
  solve(kind, steps, seed=0, gamma0=gamma0)
  return time.perf_counter() - t0


def _cold_in_fresh_process(kind: str, steps: int, gamma0: float = GAMMA0, cache=None) -> float:
  code = ("import json; from benchmarks.dmft_speed import cold_call; "
          f"print(json.dumps(cold_call({kind!r}, {steps}, {gamma0!r}, {cache!r})))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def _cold_with_cache(ctx, kind: str, steps: int, times: int) -> list:
  """Fresh processes at gamma0 = 1 after one at gamma0 = 0.5 filled a compilation cache:
  the researcher's next configuration of the same shapes."""
  cache = str(ctx.tmp / f"compiled_{kind}")
  _cold_in_fresh_process(kind, steps, gamma0=0.5, cache=cache)
  return [_cold_in_fresh_process(kind, steps, cache=cache) for _ in range(times)]


def run(ctx) -> dict:
  from benchmarks import dmft_reference  # pylint: disable=g-import-not-at-top
  from dmft import data  # pylint: disable=g-import-not-at-top
  steps = 80 if ctx.full else 40
  repeats = 5 if ctx.full else 3
  rows, details = [], {}

  cold = [_cold_in_fresh_process("two_layer", steps) for _ in range(2 if ctx.full else 1)]
  cached = _cold_with_cache(ctx, "two_layer", steps, 2 if ctx.full else 1)
  solve("two_layer", steps, seed=0)  # warm-up in this process
  x, y, _, _ = data.synthetic(n_train=P, n_test=1, dim=DIM, seed=0)
  ref_losses, ours_losses = [], []
  seed = iter(range(1, 1000))

  def ours():
    t0 = time.perf_counter()
    ours_losses.append(solve("two_layer", steps, next(seed)))
    return time.perf_counter() - t0

  def reference():
    t0 = time.perf_counter()
    loss, _, _ = dmft_reference.solve_two_layer_reference(
        x, y, gamma0=GAMMA0, lr=LR, steps=steps, n_samples=SAMPLES, n_outer=OUTER,
        seed=len(ref_losses))
    ref_losses.append(loss)
    return time.perf_counter() - t0

  times = harness.interleave(dict(ours=ours, reference=reference), repeats, log=ctx.log)
  st = {k: harness.stats(v) for k, v in times.items()}
  spread = float(np.max(np.abs(ref_losses[0] - ref_losses[1])))
  diff = float(np.max(np.abs(ours_losses[0] - ref_losses[0])) / np.max(np.abs(ref_losses[0])))
  cold_st = harness.stats(cold)
  details["two_layer"] = dict(steps=steps, P=P, dim=DIM, n_samples=SAMPLES, outer=OUTER,
                              times_s=times, cold_s=cold, cold_compile_cache_s=cached,
                              reference_seed_spread_rel=spread / float(np.max(ref_losses[0])),
                              ours_vs_reference_rel=diff)
  rows.append(harness.row(f"two-layer, T={steps}, P={P}, warm", st["ours"], st["reference"],
                          reference_name="reference algorithm (numpy)",
                          first_call=dict(ours=cold_st["median"],
                                          reference=times["reference"][0]),
                          max_diff=diff, note="loss curves; reference's own seed spread "
                          f"{details['two_layer']['reference_seed_spread_rel']:.2g}"))
  rows.append(harness.row(f"two-layer, T={steps}, P={P}, cold (fresh process)", cold_st,
                          st["reference"], reference_name="reference algorithm (numpy)",
                          note="ours includes compilation"))
  rows.append(harness.row(f"two-layer, T={steps}, P={P}, cold, compilation cache",
                          harness.stats(cached), st["reference"],
                          reference_name="reference algorithm (numpy)",
                          note="fresh process after one at gamma0 = 0.5, as the programs "
                          "run (kernels.compile_cache)"))

  deep_steps = 12
  try:
    from benchmarks import dmft_deep_reference  # pylint: disable=g-import-not-at-top
    deep_cold = _cold_in_fresh_process("deep", deep_steps)
    deep_cached = _cold_with_cache(ctx, "deep", deep_steps, 1)
    solve("deep", deep_steps, seed=0)
    xd, yd, _, _ = data.synthetic(n_train=6, n_test=1, dim=5, seed=0)
    deep_ours, deep_ref = [], []

    def deep_ours_fn():
      t0 = time.perf_counter()
      deep_ours.append(solve("deep", deep_steps, next(seed)))
      return time.perf_counter() - t0

    def deep_reference():
      t0 = time.perf_counter()
      loss, _, _ = dmft_deep_reference.solve_deep_reference(
          np.asarray(xd), np.asarray(yd), depth=2, gamma0=GAMMA0, lr=1.0, steps=deep_steps,
          n_samples=4096, n_outer=OUTER, seed=len(deep_ref))
      deep_ref.append(loss)
      return time.perf_counter() - t0

    deep = harness.interleave(dict(ours=deep_ours_fn, reference=deep_reference), repeats,
                              log=ctx.log)
    dst = {k: harness.stats(v) for k, v in deep.items()}
    scale = float(np.max(np.abs(deep_ref[0])))
    deep_diff = float(np.max(np.abs(deep_ours[0] - deep_ref[0]))) / scale
    deep_spread = float(np.max(np.abs(deep_ref[0] - deep_ref[1]))) / scale
    finite = bool(np.all(np.isfinite(deep_ours[0])) and np.all(np.isfinite(deep_ref[0])))
    details["deep"] = dict(depth=2, steps=deep_steps, P=6, dim=5, n_samples=4096,
                           outer=OUTER, times_s=deep, cold_s=deep_cold,
                           cold_compile_cache_s=deep_cached,
                           final_loss=float(deep_ours[0][-1]),
                           final_loss_reference=float(deep_ref[0][-1]),
                           ours_vs_reference_rel=deep_diff,
                           reference_seed_spread_rel=deep_spread)
    rows.append(harness.row(f"deep L=2, T={deep_steps}, P=6, warm", dst["ours"],
                            dst["reference"], reference_name="reference algorithm (numpy)",
                            first_call=dict(ours=deep_cold, reference=deep["reference"][0]),
                            max_diff=deep_diff,
                            note="loss curves; reference's own seed spread "
                            f"{deep_spread:.2g}" + ("" if finite else "; loss not finite")))
    rows.append(harness.row(f"deep L=2, T={deep_steps}, P=6, cold (fresh process)",
                            harness.stats([deep_cold]), dst["reference"],
                            reference_name="reference algorithm (numpy)",
                            note="ours includes compilation"))
    rows.append(harness.row(f"deep L=2, T={deep_steps}, P=6, cold, compilation cache",
                            harness.stats(deep_cached), dst["reference"],
                            reference_name="reference algorithm (numpy)",
                            note="fresh process after one at gamma0 = 0.5, as the programs "
                            "run (kernels.compile_cache)"))
  except Exception as e:  # pylint: disable=broad-except
    why = " ".join(str(e).split())[-200:]
    details["deep"] = dict(error=why)
    rows.append(harness.row(f"deep L=2, T={deep_steps}, P=6", None, note=f"failed: {why}"))
  return dict(rows=rows, details=details)


if __name__ == "__main__":
  harness.case_main(run)
