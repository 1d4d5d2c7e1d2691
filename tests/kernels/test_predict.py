"""kernels.predict: neural-tangents 0.6.5's values (float64 fixture), discrete time, numerics, bad input.

The reference values in tests/fixtures/nt_predict_reference.json were computed by
neural-tangents itself (``python -m benchmarks.predict_speed --fixture`` regenerates
them); discrete-time predictions are checked against matrix powers and the
covariances against the linear model's initial-output covariance, computed here.
"""
import collections
import json
import pathlib
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import layer_specs
from kernels import predict, stax

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "nt_predict_reference.json"
RTOL = 1e-6
KT = collections.namedtuple("Kernel", "nngp ntk")
DATA = json.loads(FIXTURE.read_text())


def _a(v):
  return np.asarray(v, np.float64)


def _rel(ours, ref):
  ours, ref = np.asarray(ours), _a(ref)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-300))


def _kernels(name):
  return KT(*(_a(DATA[name][g]) for g in ("nngp", "ntk")))


def test_fixture_is_neural_tangents_float64():
  assert DATA["dtype"] == "float64" and DATA["versions"]["neural_tangents"] == "0.6.5"
  assert len(DATA["gradient_descent_mse"]) == 12 and len(DATA["gradient_descent"]) == 4


def test_gradient_descent_mse_matches_neural_tangents():
  with jax.enable_x64(True):
    y, kdd, ktd = _a(DATA["y_train"]), _kernels("k_train_train"), _kernels("k_test_train")
    for c in DATA["gradient_descent_mse"]:
      g = c["get"]
      fn = predict.gradient_descent_mse(getattr(kdd, g), y, c["learning_rate"], c["diag_reg"],
                                        c["absolute"])
      f0 = _a(DATA["fx_train_0"]) if c["with_f0"] else 0.
      g0 = _a(DATA["fx_test_0"]) if c["with_f0"] else 0.
      tr, te = fn(jnp.asarray(DATA["times"]), f0, g0, getattr(ktd, g))
      tri, tei = fn(None, f0, g0, getattr(ktd, g))
      errs = [_rel(tr, c["train"]), _rel(te, c["test"]), _rel(tri, c["train_inf"]),
              _rel(tei, c["test_inf"])]
      assert max(errs) <= RTOL, (c["get"], c["learning_rate"], c["diag_reg"], errs)


def test_gp_inference_matches_neural_tangents():
  with jax.enable_x64(True):
    y = _a(DATA["y_train"])
    for c in DATA["gp_inference"]:
      fn = predict.gp_inference(_kernels("k_train_train"), y, c["diag_reg"])
      res = fn(("nngp", "ntk", "ntkgp"), _kernels("k_test_train"), _kernels("k_test_test"))
      for g in ("nngp", "ntk", "ntkgp"):
        assert _rel(getattr(res, g).mean, c[g]["mean"]) <= RTOL, g
        assert _rel(getattr(res, g).covariance, c[g]["cov"]) <= RTOL, g


def test_gradient_descent_mse_ensemble_matches_neural_tangents():
  with jax.enable_x64(True):
    _, _, kernel_fn = layer_specs.build(DATA["network"], stax, {})
    x, xt, y = _a(DATA["x_train"]), _a(DATA["x_test"]), _a(DATA["y_train"])
    for c in DATA["gradient_descent_mse_ensemble"]:
      fn = predict.gradient_descent_mse_ensemble(kernel_fn, x, y, c["learning_rate"],
                                                 c["diag_reg"])
      x_test = xt if c["test"] else None
      res = fn(jnp.asarray(DATA["times"][1:]), x_test, ("nngp", "ntk"), True)
      inf = fn(None, x_test, ("nngp", "ntk"), True)
      for g in ("nngp", "ntk"):
        ref = c[g]
        assert _rel(getattr(res, g).mean, ref["mean"]) <= RTOL, (g, c["test"])
        assert _rel(getattr(res, g).covariance, ref["cov"]) <= RTOL, (g, c["test"])
        assert _rel(getattr(inf, g).mean, ref["mean_inf"]) <= RTOL, (g, c["test"])
        if c["test"]:
          assert _rel(getattr(inf, g).covariance, ref["cov_inf"]) <= RTOL, g
        else:  # neural-tangents: the train set at infinite time is N(y, 0)
          assert np.max(np.abs(_a(ref["cov_inf"]))) == 0
          assert np.max(np.abs(np.asarray(getattr(inf, g).covariance))) == 0


def test_gradient_descent_ode_matches_neural_tangents():
  """diffrax (rtol = atol = 1e-10) against jax.experimental.ode (1.4e-8): equal to 1e-6."""
  losses = {"mse": lambda f, y: 0.5 * jnp.mean((f - y) ** 2),
            "cross_entropy": lambda f, y: -jnp.mean(jax.nn.log_softmax(f) * (y > 0))}
  with jax.enable_x64(True):
    y, kdd, ktd = _a(DATA["y_train"]), _kernels("k_train_train"), _kernels("k_test_train")
    for c in DATA["gradient_descent"]:
      fn = predict.gradient_descent(losses[c["loss"]], kdd.ntk, y, c["learning_rate"],
                                    c["momentum"])
      tr, te = fn(jnp.asarray(c["times"]), _a(DATA["fx_train_0"]), _a(DATA["fx_test_0"]),
                  ktd.ntk)
      assert max(_rel(tr, c["train"]), _rel(te, c["test"])) <= RTOL, (c["loss"], c["momentum"])


def test_max_learning_rate_matches_neural_tangents():
  with jax.enable_x64(True):
    ntk = _kernels("k_train_train").ntk
    # neural-tangents' CPU branch fails on current SciPy; ours uses subset_by_index.
    assert "eigvals" in (DATA["max_learning_rate"]["cpu_branch_error"] or "eigvals")
    for c in DATA["max_learning_rate"]["cases"]:
      ours = predict.max_learning_rate(ntk, c["y_train_size"], c["momentum"])
      assert abs(ours / c["value"] - 1) <= RTOL


# ----------------------------------------------------------------------------
# Discrete time, checked against matrix powers


def _problem(p=7, q=4, k=2, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(p + q, 3))
  net = stax.serial(stax.Dense(64, W_std=1.5, b_std=0.1), stax.Relu(), stax.Dense(k))
  return net.kernel_fn, x[:p], x[p:], rng.normal(size=(p, k))


def test_discrete_steps_equal_matrix_powers_with_covariance():
  """Mean and covariance of f_s = y + (I - lr Theta/N)^s (f_0 - y), f_0 ~ N(0, K) (Lee et al. 2019, eq. 9)."""
  with jax.enable_x64(True):
    kernel_fn, x, xt, y = _problem()
    lr, steps = 1.7, np.array([0, 1, 5, 30])
    pred = predict.gradient_descent_mse_ensemble(kernel_fn, x, y, lr)
    res = pred(x_test=xt, get=("nngp", "ntk"), compute_cov=True, steps=steps)
    res_train = pred(get=("nngp", "ntk"), compute_cov=True, steps=steps)
    kdd, ktd = kernel_fn(x, None), kernel_fn(xt, x)
    k_tt = np.asarray(kernel_fn(xt, None, "nngp"))
    n = y.size
    for g in ("nngp", "ntk"):
      th, th_t = np.asarray(getattr(kdd, g)), np.asarray(getattr(ktd, g))
      for i, s in enumerate(steps):
        e = np.linalg.matrix_power(np.eye(len(x)) - lr / n * th, int(s))
        # Linear in (f0, g0): f_s = (I - E) y + E f0; g_s = g0 + th_t th^-1 (E - I) (f0 - y).
        a = th_t @ np.linalg.solve(th, e - np.eye(len(x)))
        mean_test = -a @ y
        # Cov of g0 + a f0 with Cov(f0) = K_dd, Cov(g0, f0) = K_td (nngp).
        k_dd, k_td = np.asarray(kdd.nngp), np.asarray(ktd.nngp)
        cov_test = k_tt + a @ k_td.T + k_td @ a.T + a @ k_dd @ a.T
        cov_train = e @ k_dd @ e.T
        tol = dict(rtol=1e-8, atol=1e-10 * np.max(np.abs(k_tt)))
        np.testing.assert_allclose(getattr(res, g).mean[i], mean_test, **tol)
        np.testing.assert_allclose(getattr(res, g).covariance[i], cov_test, **tol)
        np.testing.assert_allclose(getattr(res_train, g).mean[i], (np.eye(len(x)) - e) @ y, **tol)
        np.testing.assert_allclose(getattr(res_train, g).covariance[i], cov_train, **tol)


def test_steps_approach_continuous_time_as_the_learning_rate_shrinks():
  with jax.enable_x64(True):
    kernel_fn, x, xt, y = _problem()
    kdd, ktd = kernel_fn(x, None, "ntk"), kernel_fn(xt, x, "ntk")
    errs = []
    for lr in (0.4, 0.2, 0.1, 0.05):
      fn = predict.gradient_descent_mse(kdd, y, lr)
      t_steps = int(round(8.0 / lr))  # the same absolute time lr * steps = 8
      cont = fn(t_steps, 0., 0., ktd)[1]
      disc = fn(fx_train_0=0., fx_test_0=0., k_test_train=ktd, steps=t_steps)[1]
      errs.append(float(np.max(np.abs(np.asarray(cont) - np.asarray(disc)))))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    print("discrete vs continuous gap per halving of lr:", errs, ratios)
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)  # first order in lr


# ----------------------------------------------------------------------------
# Numerics and bad input


def test_singular_train_kernel_gives_finite_predictions():
  """A repeated training point (rank-deficient kernel): neural-tangents returns NaN (issue 76)."""
  kernel_fn, x, xt, y = _problem()
  x = np.concatenate([x, x[:1]])
  y = np.concatenate([y, y[:1]])
  k, kt = kernel_fn(x, None, "ntk"), kernel_fn(xt, x, "ntk")
  fn = predict.gradient_descent_mse(k, y, 1.0)
  tr, te = fn(jnp.asarray([0.0, 1.0, 1e6]), 0., 0., kt)
  assert np.all(np.isfinite(tr)) and np.all(np.isfinite(te))
  with pytest.warns(UserWarning, match="jitter"):
    tri, tei = fn(None, 0., 0., kt)
  assert np.all(np.isfinite(tei))
  np.testing.assert_allclose(tri, y, atol=0)
  # An exactly singular direction: the zero mode gets its limit t/N, not 0/0.
  z = np.zeros((3, 3))
  z[:2, :2] = [[2.0, 1.0], [1.0, 2.0]]
  out = predict.gradient_descent_mse(z, np.ones((3, 1)), 1.0)(2.0, 0., 0., np.ones((1, 3)))
  assert np.all(np.isfinite(out[1]))
  ens = predict.gradient_descent_mse_ensemble(kernel_fn, x, y)
  res = ens(jnp.asarray([1.0, 100.0]), xt, ("nngp", "ntk"), True)
  assert all(np.all(np.isfinite(a)) for g in res for a in g)


def _negative_kernel_fn(x1, x2, get, **_):
  """A kernel_fn whose train kernel is negative definite (eigenvalues -1 and -1.4)."""
  k = -np.eye(len(x1)) - 0.1 if x2 is None else np.ones((len(x1), len(x2)))
  if isinstance(get, str):
    return k
  return collections.namedtuple("Kernel", get)(*(k for _ in get))


_NEG = -np.eye(4) - 0.1  # eigenvalues -1 (three times) and -1.4
_Y4, _KT4 = np.ones((4, 1)), np.ones((2, 4))


@pytest.mark.parametrize("call, name", [
    (lambda: predict.gradient_descent_mse(_NEG, _Y4)(None, 0., 0., _KT4), "k_train_train"),
    (lambda: predict.gradient_descent_mse(_NEG, _Y4)(5.0, 0., 0., _KT4), "k_train_train"),
    (lambda: predict.gradient_descent_mse(_NEG, _Y4)(jnp.asarray([0.5, 5.0])), "k_train_train"),
    (lambda: predict.gradient_descent_mse(_NEG, _Y4)(fx_train_0=0., fx_test_0=0.,
                                                     k_test_train=_KT4, steps=3),
     "k_train_train"),
    (lambda: predict.gradient_descent_mse_ensemble(_negative_kernel_fn, np.zeros((4, 2)), _Y4)(
        5.0, np.zeros((2, 2)), "ntk"), r"kernel_fn\(x_train, None, 'ntk'\)"),
    (lambda: predict.gradient_descent_mse_ensemble(_negative_kernel_fn, np.zeros((4, 2)), _Y4)(
        x_test=np.zeros((2, 2)), get="nngp", steps=2), r"kernel_fn\(x_train, None, 'nngp'\)"),
    (lambda: predict.gradient_descent_mse_ensemble(_negative_kernel_fn, np.zeros((4, 2)), _Y4)(
        None, np.zeros((2, 2)), "ntk"), r"k_train_train.ntk"),
    (lambda: predict.gp_inference(_NEG, _Y4)("nngp", _KT4), "k_train_train"),
    (lambda: predict.gradient_descent(lambda f, y: jnp.mean((f - y) ** 2), _NEG, _Y4),
     "k_train_train"),
    (lambda: predict.max_learning_rate(_NEG), "ntk_train_train"),
    (lambda: predict.max_learning_rate(np.diag([1.0, 0.5, -0.01])), "ntk_train_train"),
])
def test_indefinite_train_kernel_is_an_error(call, name):
  """Every path, finite and infinite time alike: an error naming the kernel, never numbers
  (finite times used to clip the eigenvalues to 0 and return zeros)."""
  with pytest.raises(ValueError, match=name + " is not positive semi-definite"):
    call()


def test_indefinite_kernel_under_jit_gives_nan_and_rounding_is_tolerated():
  fn = jax.jit(lambda k: predict.gradient_descent_mse(k, _Y4)(5.0, 0., 0., _KT4))
  assert np.all(np.isnan(fn(jnp.asarray(_NEG))[1]))
  steps = jax.jit(lambda k: predict.gradient_descent_mse(k, _Y4)(
      fx_train_0=0., fx_test_0=0., k_test_train=_KT4, steps=3))
  assert np.all(np.isnan(steps(jnp.asarray(_NEG))[1]))
  # A negative eigenvalue of rounding size (1e-9 of the largest in float64) is clipped.
  with jax.enable_x64(True):
    q = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))[0]
    k = q @ np.diag([2.0, 1.0, 0.5, -2e-9]) @ q.T
    out = predict.gradient_descent_mse(k, _Y4)(5.0, 0., 0., _KT4)
    assert np.all(np.isfinite(out[1]))
    assert np.isfinite(predict.max_learning_rate(k))
    assert np.all(np.isfinite(fn(jnp.asarray(k))[1]))


@pytest.mark.parametrize("learning_rate", [0.0, -0.5])
def test_non_positive_learning_rate_is_an_error(learning_rate):
  kernel_fn, x, _, y = _problem()
  k = kernel_fn(x, None, "ntk")
  for call in (lambda: predict.gradient_descent_mse(k, y, learning_rate),
               lambda: predict.gradient_descent_mse_ensemble(kernel_fn, x, y, learning_rate),
               lambda: predict.gradient_descent(lambda f, yy: jnp.mean((f - yy) ** 2), k, y,
                                                learning_rate)):
    with pytest.raises(ValueError, match="learning_rate must be positive"):
      call()


def test_learning_rate_above_max_learning_rate_warns():
  kernel_fn, x, _, y = _problem()
  k = kernel_fn(x, None, "ntk")
  lr_max = predict.max_learning_rate(k, y.size)
  fn = predict.gradient_descent_mse(k, y, 1.1 * lr_max)
  with pytest.warns(UserWarning, match="max_learning_rate"):
    fn(steps=10)
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    predict.gradient_descent_mse(k, y, 0.9 * lr_max)(steps=10)


@pytest.mark.parametrize("call, name", [
    (lambda k, y, kt: predict.gradient_descent_mse(k[:3], y), "k_train_train"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y)(1.0, 0., 0., kt[:, :3]), "k_test_train"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y)(1.0, np.ones((2, 2))), "fx_train_0"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y)(1.0, 0., np.ones((9, 2)), kt),
     "fx_test_0"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y)(-1.0), "t must"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y)(1.0, steps=3), "either t"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y)(steps=1.5), "steps"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y, diag_reg=-1.0), "diag_reg"),
    (lambda k, y, kt: predict.gp_inference(k, y[:3]), "k_train_train"),
    (lambda k, y, kt: predict.gp_inference(k, y)("nngp", kt, np.eye(3)), "k_test_test"),
    (lambda k, y, kt: predict.gp_inference(k, y)("bogus", kt), "get"),
    (lambda k, y, kt: predict.max_learning_rate(k[:3]), "ntk_train_train"),
    (lambda k, y, kt: predict.gradient_descent_mse(k, y, trace_axes=()), "trace_axes"),
])
def test_bad_input_names_the_argument(call, name):
  kernel_fn, x, xt, y = _problem()
  k, kt = np.asarray(kernel_fn(x, None, "ntk")), np.asarray(kernel_fn(xt, x, "ntk"))
  with pytest.raises(ValueError, match=name):
    call(k, y, kt)


def test_ensemble_rejects_mismatched_train_points():
  kernel_fn, x, _, y = _problem()
  with pytest.raises(ValueError, match="x_train"):
    predict.gradient_descent_mse_ensemble(kernel_fn, x[:3], y)


def test_ode_steady_state_is_the_infinite_time_prediction():
  with jax.enable_x64(True):
    kernel_fn, x, xt, y = _problem()
    k, kt = kernel_fn(x, None, "ntk"), kernel_fn(xt, x, "ntk")
    mse = lambda f, yy: 0.5 * jnp.mean((f - yy) ** 2)
    ode = predict.gradient_descent(mse, k, y, 1.0)(None, 0., 0., kt)
    closed = predict.gradient_descent_mse(k, y, 1.0)(None, 0., 0., kt)
    np.testing.assert_allclose(ode[1], closed[1], rtol=1e-5, atol=1e-6)
