r"""gradient_descent_mse_ensemble side by side with neural-tangents 0.6.5.

  python -m benchmarks.predict_speed [--suite=quick|full] [--out=DIR] [--no_reference]
  python -m benchmarks.predict_speed --fixture   # regenerate tests/fixtures/nt_predict_reference.json

A depth-3 ReLU MLP (float32) on Gaussian inputs of dimension 64: a fresh
predictor computes the train, test-train and test kernels, the
eigendecompositions and the mean and covariance of NNGP and NTK predictions at
10 times. Each library runs in its own process (neural-tangents in the reference
environment, `benchmarks/nt_reference_predict.py serve`); after one untimed
first call each (reported: compilation included) they are timed alternately.
Quick suite: 1,000 train and 500 test points, 3 repeats; full suite: 2,000 and
1,000, 5 repeats. Values: the largest relative difference of the means and
covariances (largest difference over the largest value).
"""
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from benchmarks import harness
from benchmarks import reference_env

TITLE = "gradient_descent_mse_ensemble (NNGP+NTK mean and covariance) vs neural-tangents"
QUICK = dict(n_train=1000, n_test=500, dim=64, depth=3, n_times=10)
FULL = dict(n_train=2000, n_test=1000, dim=64, depth=3, n_times=10)

SCRIPT = pathlib.Path(__file__).with_name("nt_reference_predict.py")
FIXTURE = reference_env.REPO_ROOT / "tests" / "fixtures" / "nt_predict_reference.json"


class Worker(reference_env.Worker):
  """`reference_env.Worker` speaking to ``nt_reference_predict.py serve``."""

  def __init__(self):  # pylint: disable=super-init-not-called
    py = reference_env.ensure()
    self._proc = subprocess.Popen([str(py), str(SCRIPT), "serve"], env=reference_env._env(),  # pylint: disable=protected-access
                                  cwd=str(reference_env.REPO_ROOT), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, bufsize=1)


def write_fixture():
  py = reference_env.ensure()
  tmp = FIXTURE.with_suffix(".tmp")
  subprocess.run([str(py), str(SCRIPT), "fixture", "--out", str(tmp)], check=True,
                 env=reference_env._env(), cwd=str(reference_env.REPO_ROOT))  # pylint: disable=protected-access
  os.replace(tmp, FIXTURE)
  return FIXTURE


class Ours:
  """The same computation with kernels.stax and kernels.predict."""

  def __init__(self, n_train, n_test, dim, depth, n_times, seed=0):
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    import numpy as np  # pylint: disable=g-import-not-at-top
    from kernels import stax  # pylint: disable=g-import-not-at-top
    rng = np.random.default_rng(seed)  # the reference draws the same numbers
    self.x_train = jnp.asarray(rng.normal(size=(n_train, dim)), jnp.float32)
    self.x_test = jnp.asarray(rng.normal(size=(n_test, dim)), jnp.float32)
    self.y_train = jnp.asarray(np.sign(rng.normal(size=(n_train, 1))), jnp.float32)
    layers = []
    for _ in range(depth):
      layers += [stax.Dense(512, W_std=1.4, b_std=0.1), stax.Relu()]
    self.kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.0, b_std=0.1)).kernel_fn
    self.ts = jnp.logspace(0, 3, n_times).astype(jnp.float32)

  def time(self):
    import jax  # pylint: disable=g-import-not-at-top
    from kernels import predict  # pylint: disable=g-import-not-at-top
    t0 = time.perf_counter()
    fn = predict.gradient_descent_mse_ensemble(self.kernel_fn, self.x_train, self.y_train)
    out = fn(self.ts, self.x_test, ("nngp", "ntk"), True)
    jax.block_until_ready(out)
    self.last = out
    return time.perf_counter() - t0


def run(ctx) -> dict:
  args = FULL if ctx.full else QUICK
  ours = Ours(**args)
  contenders = dict(ours=ours.time)
  first = dict(ours=ours.time())
  ref = Worker() if ctx.reference else None
  try:
    if ref is not None:
      ref.call("ensemble_setup", **args)
      first["reference"] = ref.call("ensemble_time", repeats=1)[0]
      contenders["neural_tangents"] = lambda: ref.call("ensemble_time", repeats=1)[0]
    times = harness.interleave(contenders, 5 if ctx.full else 3, log=ctx.log)
    diffs = {}
    if ref is not None:
      refv = dict(np.load(ref.call("ensemble_values", out_npz=str(ctx.tmp / "ref.npz"))))
      for g in ("nngp", "ntk"):
        for f in ("mean", "covariance"):
          diffs[f"{g}_{f}"] = harness.max_rel_diff(getattr(getattr(ours.last, g), f),
                                                   refv[f"{g}_{f}"])
  finally:
    if ref is not None:
      ref.close()
  st = {k: harness.stats(v) for k, v in times.items()}
  row = harness.row(
      f"depth-{args['depth']} ReLU MLP, {args['n_train']} train, {args['n_test']} test, "
      f"{args['n_times']} times", st["ours"], st.get("neural_tangents"),
      reference_name="neural-tangents", first_call=first,
      max_diff=max(diffs.values()) if diffs else None,
      note="fresh predictor each call (kernels, eigendecomposition, mean and covariance)")
  return dict(rows=[row], details=dict(args, first_call_s=first, times_s=times,
                                       max_rel_diff=diffs))


if __name__ == "__main__":
  if "--fixture" in sys.argv[1:]:
    print(f"wrote {write_fixture()}")
  else:
    harness.case_main(run)
