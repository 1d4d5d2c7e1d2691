"""neural-tangents 0.6.5 side of the prediction fixture and benchmark; runs in the reference environment.

Executed by the reference python (see `benchmarks.reference_env`), never imported
by the project: it imports only neural-tangents, JAX, numpy, `layer_specs` and
`nt_reference` (whose serve loop and command line it uses).

  python benchmarks/nt_reference_predict.py fixture --out tests/fixtures/nt_predict_reference.json
  (or, from the main environment, ``python -m benchmarks.predict_speed --fixture``)
  python benchmarks/nt_reference_predict.py serve   # JSON commands on stdin, replies on stdout
"""
import os
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import warnings  # noqa: E402

warnings.filterwarnings("ignore")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

import layer_specs  # noqa: E402  (benchmarks/layer_specs.py, beside this script)
import nt_reference  # noqa: E402  (its serve loop and command line, beside this script)

SEED = 20240612
P, Q, D, K = 8, 5, 4, 2
NETWORK = [["Dense", dict(out_dim=64, W_std=1.5, b_std=0.1, parameterization="ntk")],
           ["Relu", {}],
           ["Dense", dict(out_dim=64, W_std=1.3, b_std=0.05, parameterization="ntk")],
           ["Erf", dict(a=1.0, b=1.0, c=0.0)],
           ["Dense", dict(out_dim=K, W_std=1.0, b_std=0.1, parameterization="ntk")]]
TIMES = [0.0, 0.5, 3.0, 20.0, 400.0]


def _l(a):
  return np.asarray(a, np.float64).tolist()


def data():
  rng = np.random.default_rng(SEED)
  x_train = rng.normal(size=(P, D))
  x_test = rng.normal(size=(Q, D))
  y_train = np.sign(rng.normal(size=(P, K))) + 0.1 * rng.normal(size=(P, K))
  fx_train_0 = 0.3 * rng.normal(size=(P, K))
  fx_test_0 = 0.3 * rng.normal(size=(Q, K))
  return x_train, x_test, y_train, fx_train_0, fx_test_0


def make_fixture():
  jax.config.update("jax_enable_x64", True)
  x_train, x_test, y_train, fx_train_0, fx_test_0 = data()
  _, _, kernel_fn = layer_specs.build(NETWORK, stax, {})
  k_dd = kernel_fn(x_train, None, ("nngp", "ntk"))
  k_td = kernel_fn(x_test, x_train, ("nngp", "ntk"))
  k_tt = kernel_fn(x_test, None, ("nngp", "ntk"))
  out = dict(network=NETWORK, x_train=_l(x_train), x_test=_l(x_test), y_train=_l(y_train),
             fx_train_0=_l(fx_train_0), fx_test_0=_l(fx_test_0), times=TIMES,
             k_train_train={g: _l(getattr(k_dd, g)) for g in ("nngp", "ntk")},
             k_test_train={g: _l(getattr(k_td, g)) for g in ("nngp", "ntk")},
             k_test_test={g: _l(getattr(k_tt, g)) for g in ("nngp", "ntk")})

  # gradient_descent_mse: both kernels, learning rates, diag_reg, initial outputs, t=None.
  mse = []
  for g in ("nngp", "ntk"):
    for lr, reg, absolute in ((1.0, 0.0, False), (0.5, 1e-2, False), (2.0, 1e-3, True)):
      fn = nt.predict.gradient_descent_mse(getattr(k_dd, g), y_train, lr, reg, absolute)
      for with_f0 in (False, True):
        f0 = fx_train_0 if with_f0 else 0.
        g0 = fx_test_0 if with_f0 else 0.
        tr, te = fn(jnp.asarray(TIMES), f0, g0, getattr(k_td, g))
        tr_inf, te_inf = fn(None, f0, g0, getattr(k_td, g))
        mse.append(dict(get=g, learning_rate=lr, diag_reg=reg, absolute=absolute,
                        with_f0=with_f0, train=_l(tr), test=_l(te), train_inf=_l(tr_inf),
                        test_inf=_l(te_inf)))
  out["gradient_descent_mse"] = mse

  # gp_inference: nngp, ntk, ntkgp with covariances.
  gp = []
  for reg in (0.0, 1e-3):
    fn = nt.predict.gp_inference(k_dd, y_train, reg)
    res = fn(("nngp", "ntk", "ntkgp"), k_td, k_tt)
    gp.append(dict(diag_reg=reg, **{g: dict(mean=_l(getattr(res, g).mean),
                                            cov=_l(getattr(res, g).covariance))
                                     for g in ("nngp", "ntk", "ntkgp")}))
  out["gp_inference"] = gp

  # gradient_descent_mse_ensemble: mean and covariance, train and test, finite and infinite t.
  ens = []
  for lr, reg in ((1.0, 0.0), (2.0, 1e-2)):
    fn = nt.predict.gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, lr, reg)
    for test in (False, True):
      xt = x_test if test else None
      res = fn(jnp.asarray(TIMES[1:]), xt, ("nngp", "ntk"), True)
      inf = fn(None, xt, ("nngp", "ntk"), True)
      ens.append(dict(learning_rate=lr, diag_reg=reg, test=test, **{
          g: dict(mean=_l(getattr(res, g).mean), cov=_l(getattr(res, g).covariance),
                  mean_inf=_l(getattr(inf, g).mean), cov_inf=_l(getattr(inf, g).covariance))
          for g in ("nngp", "ntk")}))
  out["gradient_descent_mse_ensemble"] = ens

  # gradient_descent (ODE): MSE and cross-entropy, with and without momentum.
  ode = []
  losses = {"mse": lambda f, y: 0.5 * jnp.mean((f - y) ** 2),
            "cross_entropy": lambda f, y: -jnp.mean(jax.nn.log_softmax(f) * (y > 0))}
  for name, loss in losses.items():
    for momentum in (None, 0.9):
      fn = nt.predict.gradient_descent(loss, k_dd.ntk, y_train, 0.5, momentum)
      tr, te = fn(jnp.asarray([0.5, 2.0, 10.0]), fx_train_0, fx_test_0, k_td.ntk)
      ode.append(dict(loss=name, momentum=momentum, learning_rate=0.5, times=[0.5, 2.0, 10.0],
                      train=_l(tr), test=_l(te)))
  out["gradient_descent"] = ode

  # max_learning_rate: its CPU branch calls scipy's eigvalsh(eigvals=...), removed from
  # current SciPy; the reference value comes from its other (jnp.linalg) branch.
  mlr = []
  try:
    nt.predict.max_learning_rate(k_dd.ntk)
    cpu_error = None
  except TypeError as e:
    cpu_error = str(e)
  from neural_tangents._src import predict as nt_predict  # pylint: disable=g-import-not-at-top
  nt_predict._is_on_cpu = lambda x: False
  for size, momentum in ((None, 0.0), (P * K, 0.0), (P * K, 0.9)):
    mlr.append(dict(y_train_size=size, momentum=momentum,
                    value=float(nt.predict.max_learning_rate(k_dd.ntk, size, momentum))))
  out["max_learning_rate"] = dict(cases=mlr, cpu_branch_error=cpu_error)
  return dict(description="neural-tangents 0.6.5 float64 predictions (kernels.predict); "
                          "regenerate with `python -m benchmarks.predict_speed --fixture`.",
              dtype="float64", seed=SEED, versions=versions(), **out)


def versions():
  return dict(neural_tangents=nt.__version__, jax=jax.__version__, numpy=np.__version__,
              python=sys.version.split()[0])


class Server:
  """State of the benchmark commands between calls."""

  def __init__(self):
    self.fn = None

  def ensemble_setup(self, n_train, n_test, dim, depth, n_times, seed=0, dtype="float32"):
    """The depth-``depth`` ReLU MLP's ensemble predictor on random data; compiles nothing yet."""
    jax.config.update("jax_enable_x64", dtype == "float64")
    rng = np.random.default_rng(seed)
    x_train = jnp.asarray(rng.normal(size=(n_train, dim)), dtype)
    self.x_test = jnp.asarray(rng.normal(size=(n_test, dim)), dtype)
    y_train = jnp.asarray(np.sign(rng.normal(size=(n_train, 1))), dtype)
    layers = []
    for _ in range(depth):
      layers += [stax.Dense(512, W_std=1.4, b_std=0.1), stax.Relu()]
    _, _, self.kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=1.0, b_std=0.1))
    self.args = (x_train, y_train)
    self.ts = jnp.logspace(0, 3, n_times).astype(dtype)
    return dict(n_train=n_train, n_test=n_test)

  def ensemble_time(self, repeats=1):
    """Seconds of a fresh predictor (kernels, eigendecomposition, mean and covariance)."""
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      fn = nt.predict.gradient_descent_mse_ensemble(self.kernel_fn, *self.args)
      out = fn(self.ts, self.x_test, ("nngp", "ntk"), True)
      jax.block_until_ready(out)
      times.append(time.perf_counter() - t0)
    self.last = out
    return times

  def ensemble_values(self, out_npz):
    np.savez(out_npz, **{f"{g}_{f}": np.asarray(getattr(getattr(self.last, g), f))
                         for g in ("nngp", "ntk") for f in ("mean", "covariance")})
    return out_npz

  def versions(self):
    return versions()


if __name__ == "__main__":
  nt_reference.main(fixture=make_fixture, server=Server, description=__doc__)
