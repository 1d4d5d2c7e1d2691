"""`jit` for programs whose first call is mostly their compilation: XLA's classic CPU emitters.

A two-layer DMFT solve of a usual size (`dmft.two_layer`: a scan over T steps of a few
small products) runs in ~0.02 s but compiles in ~1-1.5 s, and the programs of the exact
initial kernels (``kernel_fn``, `dmft.two_layer` and `dmft.deep`) in ~0.5 s. XLA's
default CPU code generation lowers every fusion through an MLIR pass pipeline of its
own (``xla_cpu_use_fusion_emitters``), most of that compilation; its classic LLVM IR
fusion emitters compile the same fused programs in about half the time. Measured at
the settings of benchmarks/dmft_speed.py (compile CPU seconds, 3 runs each): two-layer
solve 1.0-1.9 -> 0.64-0.76, its initial kernels 0.49-0.59 -> 0.21-0.31, deep initial
kernels 0.75-0.85 -> 0.37-0.49; run times unchanged (also at P = 50, T = 200, 16384
samples); float32 outputs bitwise equal, float64 within a few ulp with the same
iteration counts (tests/dmft/test_fast_compile.py). An XLA without the option
compiles with its defaults.

The deep solve itself (`dmft.deep._solve`, a while loop over the sampled single-site
process) keeps XLA's defaults: it compiled no faster with the classic emitters.
"""
from __future__ import annotations

import functools

import jax

OPTIONS = {"xla_cpu_use_fusion_emitters": False}
_UNKNOWN = "No such compile option"
_supported = [True]  # False once this XLA has refused the options


def jit(fn, **jit_kwargs):
  """``jax.jit(fn, **jit_kwargs)``, compiled with `OPTIONS` where XLA has them."""
  fast = jax.jit(fn, compiler_options=OPTIONS, **jit_kwargs)
  plain = jax.jit(fn, **jit_kwargs)

  @functools.wraps(fn)
  def call(*args, **kwargs):
    if _supported[0]:
      try:
        return fast(*args, **kwargs)
      except jax.errors.JaxRuntimeError as e:
        if _UNKNOWN not in str(e):
          raise
        _supported[0] = False
    return plain(*args, **kwargs)

  call.lower = lambda *a, **k: (fast if _supported[0] else plain).lower(*a, **k)
  return call
