"""Empirical NTK of a Flax CNN, full output block: kernels.empirical against neural-tangents.

  python -m benchmarks.empirical_cnn_speed [--suite=quick|full] [--out=DIR] [--no_reference]

Network: a Flax module, 3 x (nn.Conv(64, (3, 3), "SAME") -> ReLU), the mean over
positions, nn.Dense(10); Flax's default initialisation, float32, 32 seeded Gaussian
inputs of shape 16x16x3 (76k parameters); ``trace_axes=()``, ``vmap_axes=0``, the
full (32, 32, 10, 10) block. The reference environment has no Flax: it gets the same
function written with ``jax.lax`` (`nt_reference.empirical_cnn_fn`, the architecture
passed as data) and the same parameters (an npz file in Flax's layout). Each
implementation is compiled ahead of time (compile time reported), then executions
alternate. The row that counts is fastest against fastest; the other compares the
Jacobian contractions. NTK-vector products (implementation 2: 320 JVP and VJP pairs
through the whole CNN, minutes per call) are left out.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks import harness

TITLE = "empirical NTK, Flax CNN 3 x Conv(64, 3x3) + GAP + Dense(10), 32 x 16x16x3 inputs"
N, SIZE, CHANNELS, DEPTH, OUT = 32, 16, 64, 3, 10
ARCH = dict(convs=[[CHANNELS, [3, 3], "SAME"]] * DEPTH, out=OUT)
NT_NAMES = {1: "jacobian_contraction", 2: "ntk_vector_products", 3: "structured_derivatives"}
OURS_FOR = {1: "jacobian", 2: "ntvp", 3: "structured"}


def module():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  class CNN(nn.Module):
    @nn.compact
    def __call__(self, x):
      for features, kernel, padding in ARCH["convs"]:
        x = nn.relu(nn.Conv(features, tuple(kernel), padding=padding)(x))
      return nn.Dense(ARCH["out"])(jnp.mean(x, axis=(1, 2)))

  return CNN()


def _save_params(variables, path):
  import jax  # pylint: disable=g-import-not-at-top
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  np.savez(path, **{"/".join(k.key for k in kp): np.asarray(v) for kp, v in flat})


def run(ctx) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from kernels.empirical import empirical_ntk_fn  # pylint: disable=g-import-not-at-top
  net = module()
  x_np = np.random.default_rng(0).normal(size=(N, SIZE, SIZE, 3)).astype(np.float32)
  x = jnp.asarray(x_np)
  variables = net.init(jax.random.PRNGKey(0), x)
  impls = (1, 3)  # NTK-vector products: one JVP and one VJP per output column, minutes here
  contenders, compile_s, values, failed = {}, {}, {}, {}
  for i in impls:
    name = OURS_FOR[i]
    fn = empirical_ntk_fn(net.apply, trace_axes=(), vmap_axes=0, implementation=name)
    t0 = time.perf_counter()
    compiled = jax.jit(lambda x, p, fn=fn: fn(x, None, p)).lower(x, variables).compile()
    compile_s[f"ours/{name}"] = time.perf_counter() - t0

    def timed(compiled=compiled, key=f"ours/{name}"):
      t0 = time.perf_counter()
      out = jax.block_until_ready(compiled(x, variables))
      values.setdefault(key, np.asarray(out))
      return time.perf_counter() - t0
    contenders[f"ours/{name}"] = timed
    ctx.log(f"compiled ours/{name} in {compile_s[f'ours/{name}']:.1f} s")
  worker = ctx.worker()
  if worker is not None:
    _save_params(variables, ctx.tmp / "cnn_params.npz")
    np.savez(ctx.tmp / "cnn_x.npz", x=x_np)
    for i in impls:
      key = f"nt/{NT_NAMES[i]}"
      try:
        r = worker.call("empirical_fn_setup", name=f"cnn{i}", arch=ARCH,
                        params_npz=str(ctx.tmp / "cnn_params.npz"),
                        inputs_npz=str(ctx.tmp / "cnn_x.npz"), implementation=i)
      except RuntimeError as e:
        lines = [l.strip() for l in str(e).splitlines() if "Error" in l]
        failed[key] = lines[-1] if lines else str(e).strip().splitlines()[-1]
        ctx.log(f"{key} does not run: {failed[key]}")
        continue
      compile_s[key] = r["compile_s"]
      contenders[key] = lambda i=i: worker.call("empirical_time", implementation=f"cnn{i}")[0]
      ctx.log(f"compiled {key} in {r['compile_s']:.1f} s")
  repeats = 7 if ctx.full else 5
  times = harness.interleave(contenders, repeats, budget_s=30.0, log=ctx.log)
  st = {k: harness.stats(v) for k, v in times.items()}
  if worker is not None:
    for i in impls:
      key = f"nt/{NT_NAMES[i]}"
      if key in st:
        path = worker.call("empirical_values", implementation=f"cnn{i}",
                           out_npz=str(ctx.tmp / f"nt_cnn{i}.npz"))
        values[key] = np.load(path)["ntk"]
  base = values["ours/structured"]
  diffs = {k: harness.max_rel_diff(v, base) for k, v in values.items() if k != "ours/structured"}
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables))
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
        note="first call = ahead-of-time compile; the same function as a Flax module (ours) "
             "and in jax.lax (neural-tangents)"))
    for i in impls:
      key, ours = f"nt/{NT_NAMES[i]}", f"ours/{OURS_FOR[i]}"
      if key in st and not (key == nt_best and ours == ours_best):
        rows.append(harness.row(f"{ours} vs the same method", st[ours], st[key],
                                reference_name=key.replace("nt/", "neural-tangents "),
                                first_call=dict(ours=compile_s[ours], reference=compile_s[key]),
                                max_diff=diffs.get(key)))
  else:
    rows.append(harness.row(f"{ours_best} (no reference)", st[ours_best],
                            first_call=dict(ours=compile_s[ours_best])))
  for key, why in failed.items():
    rows.append(harness.row(f"{key} failed", None, note=why[:120]))
  return dict(rows=rows, details=dict(parameters=n_params, compile_s=compile_s, times_s=times,
                                      max_rel_diff_vs_ours_structured=diffs, failed=failed))


if __name__ == "__main__":
  harness.case_main(run)
