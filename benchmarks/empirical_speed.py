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

import time

import numpy as np

from benchmarks import harness

TITLE = "empirical NTK, width-512 3-hidden-layer MLP, 100 x 784 inputs, 10 outputs"
N, D, WIDTH, DEPTH, OUT = 100, 784, 512, 3, 10
W_STD, B_STD = 1.5, 0.05
NT_NAMES = {1: "jacobian_contraction", 2: "ntk_vector_products", 3: "structured_derivatives"}
OURS_FOR = {1: "jacobian", 2: "ntvp", 3: "structured"}
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
  contenders, compile_s, values, failed = {}, {}, {}, {}
  for i in impls:
    name = OURS_FOR[i]
    fn = empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0, implementation=name)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda x, p, fn=fn: fn(x, None, p)).lower(x, params).compile()
    compile_s[f"ours/{name}"] = time.perf_counter() - t0

    def timed(compiled=compiled, key=f"ours/{name}"):
      t0 = time.perf_counter()
      out = jax.block_until_ready(compiled(x, params))
      values.setdefault(key, np.asarray(out))
      return time.perf_counter() - t0
    contenders[f"ours/{name}"] = timed
    ctx.log(f"compiled ours/{name} in {compile_s[f'ours/{name}']:.1f} s")
  worker = ctx.worker()
  if worker is not None:
    _save_params(params, ctx.tmp / "params.npz")
    np.savez(ctx.tmp / "x.npz", x=x_np)
    for i in impls:
      key = f"nt/{NT_NAMES[i]}"
      try:
        r = worker.call("empirical_setup", params_npz=str(ctx.tmp / "params.npz"),
                        inputs_npz=str(ctx.tmp / "x.npz"), depth=DEPTH, width=WIDTH,
                        out_dim=OUT, W_std=W_STD, b_std=B_STD, implementation=i)
      except RuntimeError as e:
        lines = [l.strip() for l in str(e).splitlines() if "Error" in l]
        failed[key] = lines[-1] if lines else str(e).strip().splitlines()[-1]
        ctx.log(f"{key} does not run: {failed[key]}")
        continue
      compile_s[key] = r["compile_s"]
      contenders[key] = lambda i=i: worker.call("empirical_time", implementation=i)[0]
      ctx.log(f"compiled {key} in {r['compile_s']:.1f} s")
  # The default trace_axes=(-1,) (the (100, 100) mean over outputs), fastest methods only.
  fn = empirical_ntk_fn(apply_fn, vmap_axes=0, implementation="structured")
  t0 = time.perf_counter()
  traced = jax.jit(lambda x, p: fn(x, None, p)).lower(x, params).compile()
  compile_s[TRACED] = time.perf_counter() - t0

  def timed_traced():
    t0 = time.perf_counter()
    out = jax.block_until_ready(traced(x, params))
    values.setdefault(TRACED, np.asarray(out))
    return time.perf_counter() - t0
  contenders[TRACED] = timed_traced
  if worker is not None:
    try:
      r = worker.call("empirical_setup", params_npz=str(ctx.tmp / "params.npz"),
                      inputs_npz=str(ctx.tmp / "x.npz"), depth=DEPTH, width=WIDTH,
                      out_dim=OUT, W_std=W_STD, b_std=B_STD, implementation=3,
                      trace_axes=(-1,), name="traced")
      compile_s[NT_TRACED] = r["compile_s"]
      contenders[NT_TRACED] = lambda: worker.call("empirical_time", implementation="traced")[0]
    except RuntimeError as e:
      failed[NT_TRACED] = str(e).strip().splitlines()[-1]
  repeats = 7 if ctx.full else 5
  times = harness.interleave(contenders, repeats, budget_s=20.0, log=ctx.log)
  st = {k: harness.stats(v) for k, v in times.items()}
  if worker is not None:
    for i in impls:
      key = f"nt/{NT_NAMES[i]}"
      if key in st:
        path = worker.call("empirical_values", implementation=i,
                           out_npz=str(ctx.tmp / f"nt{i}.npz"))
        values[key] = np.load(path)["ntk"]
    if NT_TRACED in st:
      path = worker.call("empirical_values", implementation="traced",
                         out_npz=str(ctx.tmp / "nt_traced.npz"))
      values[NT_TRACED] = np.load(path)["ntk"]
  base = values["ours/structured"]
  diffs = {k: harness.max_rel_diff(v, base) for k, v in values.items()
           if k.startswith(("ours/", "nt/")) and k != "ours/structured"}
  if NT_TRACED in values:
    diffs[NT_TRACED] = harness.max_rel_diff(values[NT_TRACED], values[TRACED])
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params))
  rows = []
  ours_best = min((k for k in st if k.startswith("ours/")), key=lambda k: st[k]["median"])
  nt = {k: v for k, v in st.items() if k.startswith("nt/")}
  if nt:
    nt_best = min(nt, key=lambda k: nt[k]["median"])
    rows.append(harness.row(
        f"fastest against fastest: {ours_best} vs {nt_best}", st[ours_best], st[nt_best],
        reference_name=nt_best.replace("nt/", "neural-tangents "),
        first_call=dict(ours=compile_s[ours_best], reference=compile_s[nt_best]),
        max_diff=diffs.get(nt_best), target=2.0,
        note="first call = ahead-of-time compile" +
             ("; implementation 3 with two JAX aliases restored" if nt_best.endswith("derivatives")
              else "")))
    for i in impls:
      key, ours = f"nt/{NT_NAMES[i]}", f"ours/{OURS_FOR[i]}"
      if key in st and key != nt_best:
        rows.append(harness.row(f"{ours} vs the same method", st[ours], st[key],
                                reference_name=key.replace("nt/", "neural-tangents "),
                                first_call=dict(ours=compile_s[ours], reference=compile_s[key]),
                                max_diff=diffs.get(key)))
  else:
    rows.append(harness.row(f"{ours_best} (no reference)", st[ours_best],
                            first_call=dict(ours=compile_s[ours_best])))
  if NT_TRACED in st:
    rows.append(harness.row("default trace_axes=(-1,): ours/structured vs the same method",
                            st[TRACED], st[NT_TRACED],
                            reference_name="neural-tangents structured_derivatives",
                            first_call=dict(ours=compile_s[TRACED],
                                            reference=compile_s[NT_TRACED]),
                            max_diff=diffs.get(NT_TRACED)))
  for key, why in failed.items():
    rows.append(harness.row(f"{key} failed", None, note=why[:120]))
  return dict(rows=rows, details=dict(parameters=n_params, compile_s=compile_s, times_s=times,
                                      max_rel_diff_vs_ours_structured=diffs, failed=failed))


if __name__ == "__main__":
  harness.case_main(run)
