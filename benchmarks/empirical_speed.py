"""Empirical (finite-width) NTK, full output block: kernels.empirical against neural-tangents.

  python -m benchmarks.empirical_speed [--suite=quick|full] [--out=DIR] [--no_reference]

Network: 3 x (Dense(512) -> Relu) -> Dense(10), NTK parameterization, W_std=1.5,
b_std=0.05, float32, 100 seeded Gaussian inputs of dimension 784 (936k
parameters); ``trace_axes=()``, the full (100, 100, 10, 10) block. Both libraries
get the same weights (an npz file) and inputs. Every implementation is compiled
ahead of time (compile time reported), then executions are interleaved
round-robin. The comparison that counts is fastest against fastest: ours
``structured`` against neural-tangents' structured derivatives (implementation
3), which runs on jax 0.5.3 once two aliases that newer JAX dropped are restored
(`nt_reference._restore_jax_aliases`), and its NTK-vector products
(implementation 2). The full suite adds both libraries' Jacobian contractions
(implementation 1; several GB and about a minute each). A second row times the
default ``trace_axes=(-1,)`` (the (100, 100) mean over outputs) for both structured
methods.
"""
from __future__ import annotations

import numpy as np

from benchmarks import harness
from benchmarks.empirical_compare import NT_NAMES, OURS_FOR, Comparison

TITLE = "empirical NTK, width-512 3-hidden-layer MLP, 100 x 784 inputs, 10 outputs"
N, D, WIDTH, DEPTH, OUT = 100, 784, 512, 3, 10
W_STD, B_STD = 1.5, 0.05
TRACED, NT_TRACED = "traced/ours/structured", "traced/nt/structured_derivatives"


def network():
  from kernels import stax  # pylint: disable=g-import-not-at-top
  layers = []
  for _ in range(DEPTH):
    layers += [stax.Dense(WIDTH, W_std=W_STD, b_std=B_STD), stax.Relu()]
  layers.append(stax.Dense(OUT, W_std=W_STD, b_std=B_STD))
  return stax.serial(*layers)


def _save_params(params, path):
  arrays = {}
  for i, (w, b) in enumerate(p for p in params if p != ()):
    arrays[f"W{i}"], arrays[f"b{i}"] = np.asarray(w), np.asarray(b)
  np.savez(path, **arrays)


def run(ctx) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from kernels.empirical import empirical_ntk_fn  # pylint: disable=g-import-not-at-top
  init_fn, apply_fn, _ = network()
  _, params = init_fn(jax.random.PRNGKey(0), (N, D), jnp.float32)
  x_np = np.random.default_rng(0).normal(size=(N, D)).astype(np.float32)
  x = jnp.asarray(x_np)
  impls = (1, 2, 3) if ctx.full else (2, 3)
  c = Comparison(ctx)
  for i in impls:
    fn = empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=OURS_FOR[i])
    c.add_ours(f"ours/{OURS_FOR[i]}", lambda x, p, fn=fn: fn(x, None, p), x, params)
  # The default trace_axes=(-1,) (the (100, 100) mean over outputs), fastest methods only.
  fn = empirical_ntk_fn(apply_fn, vmap_axes=0, implementation="structured")
  c.add_ours(TRACED, lambda x, p: fn(x, None, p), x, params)
  worker = ctx.worker()
  if worker is not None:
    _save_params(params, ctx.tmp / "params.npz")
    np.savez(ctx.tmp / "x.npz", x=x_np)
    setup = dict(params_npz=str(ctx.tmp / "params.npz"), inputs_npz=str(ctx.tmp / "x.npz"),
                 depth=DEPTH, width=WIDTH, out_dim=OUT, W_std=W_STD, b_std=B_STD)
    for i in impls:
      c.add_reference(worker, f"nt/{NT_NAMES[i]}", i, implementation=i, **setup)
    c.add_reference(worker, NT_TRACED, "traced", implementation=3, trace_axes=(-1,), **setup)
  st = c.run(7 if ctx.full else 5, budget_s=20.0)
  for i in impls:
    c.fetch_reference(worker, f"nt/{NT_NAMES[i]}", i)
  c.fetch_reference(worker, NT_TRACED, "traced")
  rows, diffs = c.rows(impls, note="first call = ahead-of-time compile; implementation 3 with "
                                   "two JAX aliases restored")
  if NT_TRACED in c.values:
    diffs[NT_TRACED] = harness.max_rel_diff(c.values[NT_TRACED], c.values[TRACED])
  if NT_TRACED in st:
    rows.append(harness.row("default trace_axes=(-1,): ours/structured vs the same method",
                            st[TRACED], st[NT_TRACED],
                            reference_name="neural-tangents structured_derivatives",
                            first_call=dict(ours=c.compile_s[TRACED],
                                            reference=c.compile_s[NT_TRACED]),
                            max_diff=diffs.get(NT_TRACED)))
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
  return dict(rows=rows + c.failure_rows(),
              details=dict(parameters=n_params, compile_s=c.compile_s, times_s=c.times,
                           max_rel_diff_vs_ours_structured=diffs, failed=c.failed))


if __name__ == "__main__":
  harness.case_main(run)
