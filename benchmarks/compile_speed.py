"""First-call (compile) and later-call time of kernel_fn against depth.

  python -m benchmarks.compile_speed [--suite=quick|full] [--out=DIR]

Network: Dense(512) then ``depth`` x (activation, Dense(512)), W_std=1.4, b_std=0.05,
``kernel_fn(x, None, ("nngp", "ntk"))`` in float32 on 6 inputs of dimension 10 (the
size where compilation, not arithmetic, is the cost). Each depth runs in a fresh
process, so its first call compiles from nothing; later calls are the median of
3 (5 in the full suite, which adds depth 256). Reports the log-log slope of first-call time against depth (1 is
linear). Before the (n1, n2) pass was split into programs of a bounded number of
nonlinearities, the first call took 2.1 s at depth 40, 40 s at 70 and about 4 min 43 s
at 100.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from benchmarks import harness

TITLE = "kernel_fn first call (compilation) against depth"
ACTIVATIONS = ("relu", "erf")


def measure(activation: str, depth: int, repeats: int) -> dict:
  """Runs in the current process: first call, then the median of later calls."""
  import time  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from kernels import stax  # pylint: disable=g-import-not-at-top
  act = {"relu": stax.Relu, "erf": stax.Erf}[activation]
  layers = [stax.Dense(512, W_std=1.4, b_std=0.05)]
  for _ in range(depth):
    layers += [act(), stax.Dense(512, W_std=1.4, b_std=0.05)]
  net = stax.serial(*layers)
  x = np.random.default_rng(0).normal(size=(6, 10)).astype(np.float32)
  t0 = time.perf_counter()
  jax.block_until_ready(net.kernel_fn(x, None, ("nngp", "ntk")))
  first = time.perf_counter() - t0
  later = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(net.kernel_fn(x, None, ("nngp", "ntk")))
    later.append(time.perf_counter() - t0)
  st = harness.stats(later)
  return dict(first_call_s=first, later_call_median_s=st["median"], later_call_min_s=st["min"],
              later_call_max_s=st["max"], repeats=st["repeats"], later_times_s=st["times"])


def _in_fresh_process(activation: str, depth: int, repeats: int) -> dict:
  code = (f"import json; from benchmarks.compile_speed import measure; "
          f"print(json.dumps(measure({activation!r}, {depth}, {repeats})))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def run(ctx) -> dict:
  depths = (16, 64, 256) if ctx.full else (16, 64)
  rows, details = [], {}
  for act in ACTIVATIONS:
    entry = {}
    for depth in depths:
      entry[depth] = _in_fresh_process(act, depth, 5 if ctx.full else 3)
      ctx.log(f"{act} depth {depth}: first call {entry[depth]['first_call_s']:.2f} s")
    from kernels import slopes  # pylint: disable=g-import-not-at-top
    fit = slopes.loglog_fit(list(depths), [entry[d]["first_call_s"] for d in depths])
    details[act] = dict(depths={str(d): m for d, m in entry.items()}, slope=fit.slope,
                        interval=[fit.low, fit.high])
    for depth in depths:
      m = entry[depth]
      later = dict(median=m["later_call_median_s"], min=m["later_call_min_s"],
                   max=m["later_call_max_s"], repeats=m["repeats"], times=m["later_times_s"])
      rows.append(harness.row(
          f"{act} depth {depth}, 6 inputs: later calls", later,
          first_call=dict(ours=m["first_call_s"]),
          note=(f"first call ~ depth^{fit.slope:.2f}" if depth == depths[-1] else "")))
  return dict(rows=rows, details=details)


if __name__ == "__main__":
  harness.case_main(run)
