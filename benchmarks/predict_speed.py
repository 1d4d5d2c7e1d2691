r"""gradient_descent_mse_ensemble side by side with neural-tangents 0.6.5.

  python -m benchmarks.predict_speed --out=/tmp/predict_speed [--n_train=2000 --n_test=1000]
  python -m benchmarks.predict_speed --fixture   # regenerate tests/fixtures/nt_predict_reference.json

A depth-3 ReLU MLP (float32) on Gaussian inputs: a fresh predictor computes the
train, test-train and test kernels, the eigendecompositions and the mean and
covariance of NNGP and NTK predictions at 10 times. Each library runs in its own
process (neural-tangents in the reference environment, `benchmarks/nt_reference_predict.py
serve`), timed alternately, ``repeats`` times each; medians and their ratio are
written to OUT/predict_speed.json, with the largest relative difference of the outputs.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from benchmarks import reference_env

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_integer("n_train", 2000, "Training points.")
flags.DEFINE_integer("n_test", 1000, "Test points.")
flags.DEFINE_integer("dim", 64, "Input dimension.")
flags.DEFINE_integer("depth", 3, "Hidden ReLU layers.")
flags.DEFINE_integer("n_times", 10, "Times at which mean and covariance are predicted.")
flags.DEFINE_integer("repeats", 3, "Alternated timings per library.")
flags.DEFINE_bool("fixture", False, "Regenerate the float64 prediction fixture and exit.")

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


def main(argv):
  del argv
  if FLAGS.fixture:
    print(f"wrote {write_fixture()}")
    return
  if not FLAGS.out:
    raise app.UsageError("--out is required.")
  import numpy as np  # pylint: disable=g-import-not-at-top
  os.makedirs(FLAGS.out, exist_ok=True)
  args = dict(n_train=FLAGS.n_train, n_test=FLAGS.n_test, dim=FLAGS.dim, depth=FLAGS.depth,
              n_times=FLAGS.n_times)
  ours = Ours(**args)
  ours_t, ref_t = [], []
  with Worker() as ref:
    ref.call("ensemble_setup", **args)
    ours.time()  # first calls compile: not counted, for either library
    ref.call("ensemble_time", repeats=1)
    for _ in range(FLAGS.repeats):
      ours_t.append(ours.time())
      ref_t += ref.call("ensemble_time", repeats=1)
    with tempfile.TemporaryDirectory() as d:
      path = ref.call("ensemble_values", out_npz=os.path.join(d, "ref.npz"))
      refv = dict(np.load(path))
  diffs = {}
  for g in ("nngp", "ntk"):
    for f in ("mean", "covariance"):
      a, b = np.asarray(getattr(getattr(ours.last, g), f)), refv[f"{g}_{f}"]
      diffs[f"{g}_{f}"] = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
  res = dict(args, ours_s=ours_t, neural_tangents_s=ref_t,
             ours_median_s=float(np.median(ours_t)), nt_median_s=float(np.median(ref_t)),
             speedup=float(np.median(ref_t) / np.median(ours_t)), max_rel_diff=diffs)
  tmp = os.path.join(FLAGS.out, "predict_speed.json.tmp")
  with open(tmp, "w") as f:
    json.dump(res, f, indent=1)
  os.replace(tmp, os.path.join(FLAGS.out, "predict_speed.json"))
  print(json.dumps(res, indent=1))


if __name__ == "__main__":
  app.run(main)
