"""Two-layer DMFT: lazy limit, solver agreement, errors and precision."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dmft
from dmft import activations
from dmft import data
from dmft import ensembles
from kernels import predict

P, STEPS, LR = 10, 30, 1.0
N_SAMPLES = 1024


@pytest.fixture(scope="module")
def task():
  return data.synthetic(n_train=P, n_test=5, dim=5, seed=1)


def _lazy_reference(x, y, xt, activation):
  """kernels' NTK of the same mup network and its discrete-time GD."""
  net = ensembles.build_network(16, activation=activation, gamma0=1.0)
  ntk_tt = net.kernel_fn(x, None, "ntk")
  ntk_st = net.kernel_fn(xt, x, "ntk")
  train, test = predict.gradient_descent_mse(ntk_tt, y, LR)(
      fx_test_0=0., k_test_train=ntk_st, steps=np.arange(STEPS + 1))
  loss = 0.5 * np.mean((np.asarray(train) - np.asarray(y)) ** 2, axis=1)
  return types.SimpleNamespace(train=np.asarray(train), test=np.asarray(test), loss=loss)


@pytest.mark.parametrize("activation", ["erf", "tanh"])
def test_lazy_limit_equals_kernels_gradient_descent(task, activation):
  x, y, xt, _ = task
  # The same stax activation layer in both views (exact Gaussian duals).
  activation = activations.layer(activation)
  res = dmft.solve_two_layer(x, y, activation=activation, gamma0=1e-3, lr=LR,
                             steps=STEPS, n_samples=N_SAMPLES, seed=0, X_test=xt)
  ref = _lazy_reference(x, y, xt, activation)
  np.testing.assert_allclose(res.f_train, ref.train,
                             atol=1e-4)
  np.testing.assert_allclose(res.f_test, ref.test,
                             atol=1e-4)
  np.testing.assert_allclose(res.loss, np.asarray(ref.loss), atol=1e-4)


def test_lazy_limit_relu_float64(task):
  x, y, xt, _ = task
  with jax.enable_x64(True):
    res = dmft.solve_two_layer(x, y, activation="relu", gamma0=1e-6, lr=LR,
                               steps=STEPS, n_samples=4096, seed=0,
                               X_test=xt)  # float64: a separate compile
    ref = _lazy_reference(jnp.asarray(x, jnp.float64),
                          jnp.asarray(y, jnp.float64),
                          jnp.asarray(xt, jnp.float64), "relu")
  assert res.f_train.dtype == np.float64
  np.testing.assert_allclose(res.f_train, ref.train,
                             atol=1e-4)


def test_march_and_damped_iteration_agree(task):
  x, y, _, _ = task
  kw = dict(activation="relu", gamma0=0.7, lr=0.5, steps=STEPS,
            n_samples=N_SAMPLES, seed=3)
  marched = dmft.solve_two_layer(x, y, **kw)
  iterated = dmft.solve_two_layer(x, y, method="iterate", damping=0.8, **kw)
  assert iterated.converged and iterated.n_iterations > 1
  assert iterated.residual <= iterated.info["tol"]
  np.testing.assert_allclose(marched.loss, iterated.loss, atol=2e-5)
  assert marched.residual < 1e-5


def test_nonconvergence_raises(task):
  x, y, _, _ = task
  with pytest.raises(dmft.NonConvergenceError) as err:
    dmft.solve_two_layer(x, y, gamma0=0.7, lr=0.5, steps=STEPS,
                         n_samples=N_SAMPLES, method="iterate",
                         max_iterations=2)
  assert err.value.n_iterations == 2 and err.value.residual > 0
  res = dmft.solve_two_layer(x, y, gamma0=0.7, lr=0.5, steps=STEPS,
                             n_samples=N_SAMPLES, method="iterate",
                             max_iterations=2, raise_on_nonconvergence=False)
  assert not res.converged


def test_divergence_detected(task):
  x, y, _, _ = task
  with pytest.raises(dmft.DivergenceError, match="lr"):
    dmft.solve_two_layer(x, y, gamma0=1.0, lr=100.0, steps=STEPS,
                         n_samples=N_SAMPLES)
  # Below the lazy edge of stability but unstable once features grow.
  with pytest.raises(dmft.DivergenceError):
    dmft.solve_two_layer(x, y, gamma0=30.0, lr=4.0, steps=STEPS,
                         n_samples=N_SAMPLES)


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(X=np.zeros(5)), ValueError, "X"),
    (dict(y=np.zeros(3)), ValueError, "y"),
    (dict(gamma0=-1.0), ValueError, "gamma0"),
    (dict(lr="big"), TypeError, "lr"),
    (dict(steps=0), ValueError, "steps"),
    (dict(activation=3), TypeError, "activation"),
    (dict(activation="swishy"), ValueError, "activation"),
    (dict(X_test=np.zeros((2, 7))), ValueError, "X_test"),
    (dict(damping=1.5), ValueError, "damping"),
])
def test_bad_input(task, kwargs, exc, name):
  x, y, _, _ = task
  args = dict(X=x, y=y, gamma0=1.0, lr=0.5, steps=5, n_samples=64)
  args.update(kwargs)
  xx, yy = args.pop("X"), args.pop("y")
  with pytest.raises(exc, match=name):
    dmft.solve_two_layer(xx, yy, **args)


def test_lazy_to_rich_alignment_grows(task):
  x, y, xt, yt = task
  align, test_loss, drift = [], [], []
  for g in (0.01, 1.0, 3.0):
    r = dmft.solve_two_layer(x, y, activation="relu", gamma0=g, lr=LR,
                             steps=STEPS, n_samples=N_SAMPLES, X_test=xt,
                             y_test=yt)
    align.append(dmft.kernel_alignment(r.ntk[-1], y))
    test_loss.append(r.test_loss[-1])
    drift.append(np.linalg.norm(r.ntk[-1] - r.ntk[0]) /
                 np.linalg.norm(r.ntk[0]))
  # The kernel moves (and aligns with y y^T) in the rich regime only.
  assert drift[0] < 0.01 < 0.05 < drift[1] < drift[2]
  assert align[0] < align[1] < align[2]
  assert abs(test_loss[2] - test_loss[0]) > 1e-3


def test_kernels_and_shapes(task):
  x, y, xt, _ = task
  r = dmft.solve_two_layer(x, y, steps=STEPS, n_samples=N_SAMPLES, X_test=xt)
  k = len(r.kernel_times)
  assert r.phi.shape == (1, k, k, P, P) and r.g.shape == (1, k, k, P, P)
  t = STEPS + 1
  assert r.ntk.shape == (t, P, P) and r.ntk_test_train.shape == (t, 5, P)
  assert r.f_train.dtype == np.float32
  # Equal-time kernels are symmetric and positive semi-definite.
  phi00 = r.phi[0, 0, 0]
  np.testing.assert_allclose(phi00, phi00.T, atol=1e-6)
  assert np.linalg.eigvalsh(phi00).min() > -1e-4
  assert np.all(np.isfinite(r.mc_error))


def test_stax_activation_layer_is_accepted(task):
  from kernels import stax  # pylint: disable=g-import-not-at-top
  x, y, _, _ = task
  a = dmft.solve_two_layer(x, y, activation=stax.Relu(), steps=STEPS,
                           n_samples=N_SAMPLES)
  b = dmft.solve_two_layer(x, y, activation="relu", steps=STEPS,
                           n_samples=N_SAMPLES)
  np.testing.assert_allclose(a.loss, b.loss, atol=1e-6)
