"""Peak resident memory of one NNGP + NTK computation, in a fresh process of either environment.

  python benchmarks/peak_memory.py STAX_MODULE SPEC_JSON INPUTS_NPZ [BATCH_SIZE]

Runs in the main environment (``kernels.stax``) and in the neural-tangents
reference environment (``neural_tangents.stax``); it imports only the named stax
module, JAX, numpy and the pure-Python `layer_specs` beside it. It builds the
layer-spec network, loads the inputs, reads the process's peak resident set
(``VmHWM`` of /proc/self/status) as the baseline after all imports and the inputs,
then makes one ``kernel_fn(x, None, get=("nngp", "ntk"))`` call (compilation included;
neural-tangents' under ``jax.jit``, ours as it is called, since it compiles its own
programs; tiled by the library's ``batch`` when BATCH_SIZE > 0) and reads VmHWM
again. Prints one JSON line: baseline, peak and their difference in GB, and the
seconds of the call.
"""
import importlib
import json
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import warnings  # noqa: E402

warnings.filterwarnings("ignore")


def vm_hwm_gb() -> float:
  """Peak resident set of this process so far (VmHWM), in GB (2^30 bytes)."""
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) / 2 ** 20
  raise RuntimeError("no VmHWM line in /proc/self/status")


def main(argv):
  module, spec_json, inputs_npz = argv[:3]
  batch_size = int(argv[3]) if len(argv) > 3 else 0
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import layer_specs  # pylint: disable=g-import-not-at-top
  stax = importlib.import_module(module)
  lib = importlib.import_module(module.rsplit(".", 1)[0])
  with open(spec_json) as f:
    spec = json.load(f)
  x = jax.numpy.asarray(np.load(inputs_npz)["x"])
  kernel_fn = layer_specs.build(spec, stax, {})[2]
  if batch_size:
    kernel_fn = lib.batch(kernel_fn, batch_size=batch_size, store_on_device=False)
  elif module != "kernels.stax":  # ours compiles its own programs, as it is called
    kernel_fn = jax.jit(kernel_fn, static_argnames=("get",))
  jax.block_until_ready(x)
  baseline = vm_hwm_gb()
  t0 = time.perf_counter()
  jax.block_until_ready(kernel_fn(x, None, get=("nngp", "ntk")))
  seconds = time.perf_counter() - t0
  peak = vm_hwm_gb()
  print(json.dumps(dict(baseline_gb=baseline, peak_gb=peak, peak_above_baseline_gb=peak - baseline,
                        first_call_s=seconds, module=module, batch_size=batch_size)))


if __name__ == "__main__":
  main(sys.argv[1:])
