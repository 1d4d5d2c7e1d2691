"""NNGP + NTK of convolutional networks (a 3-layer ReLU CNN, Myrtle-5): kernels.stax against neural-tangents.

  python -m benchmarks.cnn_kernel_speed [--suite=quick|full] [--out=DIR] [--no_reference]

Networks, each written once as layer specs (`benchmarks.layer_specs`) and built
with ``kernels.stax`` here and ``neural_tangents.stax`` in the reference process:

* CNN: 3 x (Conv(64, (3, 3), SAME) -> Relu), a 2x2 average pooling after the
  first two, then global average pooling and Dense(10) (the convolutional
  network of neural-tangents' documentation), on 20 inputs of 16x16x3;
* Myrtle-5 (Shankar et al. 2020, "Neural Kernels Without Tangents", as in
  neural-tangents' examples): 2 x (Conv-Relu), AvgPool 2x2, Conv-Relu, AvgPool
  2x2, Conv-Relu, three AvgPool 2x2, Flatten, Dense(10); W_std = sqrt(2),
  b_std = 0, SAME padding, on 32x32x3 inputs: 4 of them in the quick suite, 64
  (tiles of 8 by both libraries' ``batch``) in the full suite. The full spatial
  covariance of 64 such inputs holds 64^2 32^4 floats (17 GB) per kernel, so the
  full size is tiled on both sides. A tiled call takes minutes (ours) to tens of
  minutes (neural-tangents) on 2 cores, so the first call is on one tile (8
  inputs: it compiles the tile program every tile runs), then one timed call on
  all 64, whose values are compared; peak memory is measured on 16 inputs (2 x 2
  tiles: the peak is a tile's working set).

``kernel_fn(x, None, get=("nngp", "ntk"))`` in float32 on seeded Gaussian inputs:
neural-tangents' under ``jax.jit``, ours called as it is (it compiles its own
programs; an outer ``jax.jit`` would merge them into one, which for full spatial
covariances is slower and holds more memory, see docs/kernels.md). Ours and
neural-tangents (its own process) are timed in alternation after a first call
each (compilation included). Values: largest difference of ours and
neural-tangents relative to the largest value. Peak memory: each side
runs once more in a fresh process (`benchmarks/peak_memory.py`), which reads its
own peak resident set (VmHWM of /proc/self/status) after imports and inputs
(the baseline) and after one first call; the row states peak minus baseline.
Target stated by the project: at least 3x neural-tangents for both networks.
"""
from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import numpy as np

from benchmarks import harness

TITLE = "CNN and Myrtle-5 NNGP/NTK (float32), vs neural-tangents, time and peak memory"
GET = ("nngp", "ntk")
HERE = pathlib.Path(__file__).resolve().parent
MEMORY_SCRIPT = HERE / "peak_memory.py"


def _conv(out_chan, W_std=1.0, b_std=0.0):
  return ["Conv", dict(out_chan=out_chan, filter_shape=[3, 3], padding="SAME", W_std=W_std,
                       b_std=b_std)]


def cnn_spec(width: int = 64):
  """3 ReLU convolutions, average pooling, global average pooling, Dense(10)."""
  w, b = 1.5, 0.05
  pool = ["AvgPool", dict(window_shape=[2, 2], strides=[2, 2])]
  return [_conv(width, w, b), ["Relu", {}], pool,
          _conv(width, w, b), ["Relu", {}], pool,
          _conv(width, w, b), ["Relu", {}],
          ["GlobalAvgPool", {}], ["Dense", dict(out_dim=10, W_std=w, b_std=b)]]


def myrtle_spec(depth: int = 5, width: int = 128):
  """Myrtle network of Shankar et al. (2020), as neural-tangents' examples write it."""
  per_stage = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}[depth]
  w = math.sqrt(2.0)
  pool = ["AvgPool", dict(window_shape=[2, 2], strides=[2, 2])]
  spec = []
  for stage, count in enumerate(per_stage):
    spec += [_conv(width, w, 0.0), ["Relu", {}]] * count
    spec += [pool] * (1 if stage < 2 else 3)
  return spec + [["Flatten", {}], ["Dense", dict(out_dim=10, W_std=w, b_std=0.0)]]


def cases(full: bool):
  """(name, spec, n, image side, batch_size) of each network in the suite."""
  return (("3-layer ReLU CNN", cnn_spec(), 20, 16, 0),
          ("Myrtle-5", myrtle_spec(), 64 if full else 4, 32, 8 if full else 0))


def inputs(n: int, side: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(n, side, side, 3)).astype(np.float32)


def ours_kernel_fn(spec, batch_size: int = 0):
  import jax  # pylint: disable=g-import-not-at-top
  import kernels  # pylint: disable=g-import-not-at-top
  from benchmarks import layer_specs  # pylint: disable=g-import-not-at-top
  from kernels import stax  # pylint: disable=g-import-not-at-top
  kernel_fn = layer_specs.build(spec, stax, {})[2]
  if batch_size:
    return kernels.batch(kernel_fn, batch_size=batch_size, store_on_device=False)
  return kernel_fn  # compiles its own programs (see the module docstring)


def peak_memory(python: str, module: str, spec_path: str, inputs_path: str, batch_size: int,
                env=None) -> dict:
  """Runs `benchmarks/peak_memory.py` in a fresh process; returns its JSON line."""
  out = subprocess.run([python, str(MEMORY_SCRIPT), module, spec_path, inputs_path,
                        str(batch_size)], capture_output=True, text=True, env=env,
                       cwd=str(HERE.parent), check=False)
  if out.returncode != 0:
    raise RuntimeError(f"peak_memory.py ({module}) failed:\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def one_network(ctx, name, spec, n, side, batch_size):
  import jax  # pylint: disable=g-import-not-at-top
  x_np = inputs(n, side)
  x = jax.numpy.asarray(x_np)
  kernel_fn = ours_kernel_fn(spec, batch_size)
  last = {}

  def run_ours():
    last["k"] = kernel_fn(x, None, get=GET)
    return last["k"]

  ours = harness.timer(run_ours)
  # Tiled: the first call is one tile (it compiles the program every tile runs).
  warmup = x[:batch_size] if batch_size else x
  first = dict(ours=harness.timer(lambda: kernel_fn(warmup, None, get=GET))())
  contenders = dict(ours=ours)
  spec_path, x_path = str(ctx.tmp / "spec.json"), str(ctx.tmp / "x.npz")
  pathlib.Path(spec_path).write_text(json.dumps(spec))
  np.savez(x_path, x=x_np)
  worker = ctx.worker()
  if worker is not None:
    setup = worker.call("spec_setup", spec=spec, inputs_npz=x_path, batch_size=batch_size,
                        warmup_n=batch_size)
    first["reference"] = setup["first_call_s"]
    contenders["neural_tangents"] = lambda: worker.call("spec_time", repeats=1)[0]
  # A tiled full-size Myrtle-5 call takes minutes to tens of minutes: one timed repeat.
  times = harness.interleave(contenders, 1 if batch_size else (5 if ctx.full else 3),
                             log=ctx.log)
  st = {k: harness.stats(v) for k, v in times.items()}
  details = dict(n=n, input_shape=[side, side, 3], batch_size=batch_size, first_call_s=first,
                 first_call_inputs=batch_size or n,
                 times_s=times)
  # Tiled: the peak is one tile's working set, measured on 2 x 2 tiles.
  n_memory = min(n, 2 * batch_size) if batch_size else n
  memory_path = str(ctx.tmp / "x_memory.npz")
  np.savez(memory_path, x=x_np[:n_memory])
  details["peak_memory_n"] = n_memory
  memory = dict(ours=peak_memory(sys.executable, "kernels.stax", spec_path, memory_path,
                                 batch_size))
  max_diff = None
  if worker is not None:
    from benchmarks import reference_env  # pylint: disable=g-import-not-at-top
    memory["neural_tangents"] = peak_memory(
        str(reference_env.python_path()), "neural_tangents.stax", spec_path, memory_path,
        batch_size,
        env=reference_env._env())  # pylint: disable=protected-access
    ref = np.load(worker.call("spec_values", out_npz=str(ctx.tmp / "nt.npz")))
    k = last["k"]  # the values of the last timed calls on both sides
    details["ours_vs_neural_tangents"] = {
        g: harness.max_rel_diff(np.asarray(getattr(k, g)), ref[g]) for g in GET}
    max_diff = max(details["ours_vs_neural_tangents"].values())
  details["peak_memory"] = memory
  mem = {k: v["peak_above_baseline_gb"] for k, v in memory.items()}
  mem_text = (f"peak memory above baseline (n={n_memory}): ours " if n_memory != n else
              "peak memory above baseline: ours ") + f"{mem['ours']:.2f} GB" + (
      f", neural-tangents {mem['neural_tangents']:.2f} GB" if "neural_tangents" in mem else "")
  what = (f"{name}, n={n}, {side}x{side}x3" +
          (f", tiles of {batch_size} (first call: one tile)" if batch_size else ""))
  row = harness.row(what, st["ours"], st.get("neural_tangents"),
                    reference_name="neural-tangents", first_call=first, max_diff=max_diff,
                    target=3.0, note=mem_text + " (VmHWM of a fresh process, first call)")
  return row, details


def run(ctx) -> dict:
  rows, details = [], {}
  for name, spec, n, side, batch_size in cases(ctx.full):
    r, d = one_network(ctx, name, spec, n, side, batch_size)
    rows.append(r)
    details[name] = d
  return dict(rows=rows, details=details)


if __name__ == "__main__":
  harness.case_main(run)
