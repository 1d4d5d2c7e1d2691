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

import numpy as np

from benchmarks import harness
from benchmarks.empirical_compare import NT_NAMES, OURS_FOR, Comparison

TITLE = "empirical NTK, Flax CNN 3 x Conv(64, 3x3) + GAP + Dense(10), 32 x 16x16x3 inputs"
N, SIZE, CHANNELS, DEPTH, OUT = 32, 16, 64, 3, 10
ARCH = dict(convs=[[CHANNELS, [3, 3], "SAME"]] * DEPTH, out=OUT)


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
  c = Comparison(ctx)
  for i in impls:
    fn = empirical_ntk_fn(net.apply, trace_axes=(), vmap_axes=0, implementation=OURS_FOR[i])
    c.add_ours(f"ours/{OURS_FOR[i]}", lambda x, p, fn=fn: fn(x, None, p), x, variables)
  worker = ctx.worker()
  if worker is not None:
    _save_params(variables, ctx.tmp / "cnn_params.npz")
    np.savez(ctx.tmp / "cnn_x.npz", x=x_np)
    for i in impls:
      c.add_reference(worker, f"nt/{NT_NAMES[i]}", f"cnn{i}", arch=ARCH,
                      params_npz=str(ctx.tmp / "cnn_params.npz"),
                      inputs_npz=str(ctx.tmp / "cnn_x.npz"), implementation=i)
  c.run(7 if ctx.full else 5, budget_s=30.0)
  for i in impls:
    c.fetch_reference(worker, f"nt/{NT_NAMES[i]}", f"cnn{i}")
  rows, diffs = c.rows(impls, note="first call = ahead-of-time compile; the same function as a "
                                   "Flax module (ours) and in jax.lax (neural-tangents)")
  n_params = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(variables))
  return dict(rows=rows + c.failure_rows(),
              details=dict(parameters=n_params, compile_s=c.compile_s, times_s=c.times,
                           max_rel_diff_vs_ours_structured=diffs, failed=c.failed))


if __name__ == "__main__":
  harness.case_main(run)
