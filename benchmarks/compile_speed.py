"""First-call (compile) and later-call time of kernel_fn against depth.

  python -m benchmarks.compile_speed [--depths 16,64,256] [--repeats 5]

Network: Dense(512) then ``depth`` x (activation, Dense(512)), W_std=1.4, b_std=0.05,
``kernel_fn(x, None, ("nngp", "ntk"))`` in float32 on 6 inputs of dimension 10 (the
size where compilation, not arithmetic, is the cost). Each depth runs in a fresh
process, so its first call compiles from nothing; later calls are the median of
``--repeats``. Reports the log-log slope of first-call time against depth (1 is
linear). Before the (n1, n2) pass was split into programs of a bounded number of
nonlinearities, the first call took 2.1 s at depth 40, 40 s at 70 and about 4 min 43 s
at 100. Writes benchmarks/results/compile_speed.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np

import benchmarks

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
  return dict(first_call_s=first, later_call_median_s=benchmarks.median(later),
              later_call_min_s=min(later), later_call_max_s=max(later))


def _in_fresh_process(activation: str, depth: int, repeats: int) -> dict:
  code = (f"import json; from benchmarks.compile_speed import measure; "
          f"print(json.dumps(measure({activation!r}, {depth}, {repeats})))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def summary(result) -> list:
  rows = []
  for act, entry in result["cases"].items():
    for depth, m in entry["depths"].items():
      rows.append((f"compile_speed: {act} depth {depth} first / later call (s)",
                   f"{m['first_call_s']:.2f} / {m['later_call_median_s']:.3f}"))
    rows.append((f"compile_speed: {act} slope of first call in depth", f"{entry['slope']:.2f}"))
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--depths", default="16,64,256")
  p.add_argument("--repeats", type=int, default=5)
  a = p.parse_args(argv)
  depths = [int(d) for d in a.depths.split(",")]
  result = dict(machine=benchmarks.machine_info(), versions=benchmarks.main_versions(),
                network="Dense(512) + depth x (act, Dense(512)), 6 inputs of dim 10, float32",
                cases={})
  for act in ACTIVATIONS:
    entry = {"depths": {}}
    for depth in depths:
      m = _in_fresh_process(act, depth, a.repeats)
      entry["depths"][str(depth)] = m
      print(f"{act} depth {depth}: first call {m['first_call_s']:.2f} s, later "
            f"{m['later_call_median_s']:.4f} s", flush=True)
    firsts = [entry["depths"][str(d)]["first_call_s"] for d in depths]
    entry["slope"] = float(np.polyfit(np.log(depths), np.log(firsts), 1)[0]) if len(depths) > 1 else None
    result["cases"][act] = entry
  path = benchmarks.write_json("compile_speed", result)
  for row, value in summary(result):
    print(f"{row:60s} {value}")
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
