"""Deep and residual DMFT: closed linear equations, sampling, lazy limit."""
import numpy as np
import pytest

import dmft
from dmft import data
from dmft import deep
from dmft import ensembles
from kernels import predict

STEPS = 8


@pytest.fixture(scope="module")
def task():
  return data.synthetic(n_train=5, n_test=3, dim=4, seed=2)


def test_sampling_solver_matches_closed_linear_equations(task):
  x, y, _, _ = task
  kw = dict(depth=2, gamma0=0.8, lr=0.5, steps=STEPS)
  closed = dmft.solve_deep_linear(x, y, **kw)
  sampled = dmft.solve_deep(x, y, activation="linear", n_samples=1024,
                            n_response=64, damping=1.0, **kw)
  assert closed.converged and sampled.converged
  assert closed.info["solver"] == "deep_linear"
  # Feature learning matters here, and both solvers agree on it.
  lazy = dmft.solve_deep_linear(x, y, depth=2, gamma0=1e-3, lr=0.5,
                                steps=STEPS)
  assert np.max(np.abs(closed.loss - lazy.loss)) > 1e-2
  np.testing.assert_allclose(sampled.loss, closed.loss, atol=1e-4)
  np.testing.assert_allclose(sampled.phi, closed.phi, atol=1e-3)
  # Its lazy limit is kernels' NTK gradient descent of the deep linear net.
  net = ensembles.build_network(8, depth=2, activation="linear")
  ntk = net.kernel_fn(x, None, "ntk")
  ref = predict.gradient_descent_mse(ntk, y, 0.5, STEPS)
  np.testing.assert_allclose(lazy.loss, np.asarray(ref.loss), atol=1e-4)


@pytest.mark.parametrize("residual", [False, True])
def test_initial_kernels_match_kernels_stax(task, residual):
  x, y, xt, _ = task
  x_all = np.concatenate([x, xt])
  net = ensembles.build_network(8, depth=3, activation="relu",
                                residual=residual)
  beta = 2 ** -0.5 if residual else 1.0
  _, _, ntk = deep.initial_kernels("relu", x_all, len(y), 3,
                                   residual=residual, branch_multiplier=beta)
  ref = net.kernel_fn(x_all, x, "ntk")
  np.testing.assert_allclose(ntk, ref, rtol=2e-5, atol=2e-5)


def test_deep_nonconvergence_raises(task):
  x, y, _, _ = task
  with pytest.raises(dmft.NonConvergenceError, match="did not converge"):
    dmft.solve_deep_linear(x, y, depth=2, gamma0=0.8, lr=0.5, steps=STEPS,
                           max_iterations=1)


def test_deep_bad_input(task):
  x, y, _, _ = task
  with pytest.raises(ValueError, match="depth"):
    dmft.solve_deep(x, y, depth=0)
  with pytest.raises(ValueError, match="n_blocks"):
    dmft.solve_residual(x, y, n_blocks=0)
  with pytest.raises(ValueError, match="activation"):
    dmft.solve_deep(x, y, depth=2, activation="relu", exact_linear=True)


@pytest.mark.slow
def test_deep_relu_matches_finite_width(task):
  x, y, _, _ = task
  theory = dmft.solve_deep(x, y, depth=2, activation="relu", gamma0=1.0,
                           lr=1.0, steps=STEPS, n_samples=4096,
                           n_response=128)
  ens = dmft.train_ensemble(x, y, width=2048, n_seeds=8, steps=STEPS, lr=1.0,
                            gamma0=1.0, depth=2, activation="relu", ntk=False)
  mean, sd = ens.loss.mean(0), ens.loss.std(0)
  # Within three standard errors of the ensemble mean plus the 1/N bias.
  assert np.all(np.abs(mean - theory.loss) <
                3 * sd / np.sqrt(8) + 3 * theory.mc_error + 2e-3)


@pytest.mark.slow
def test_residual_depth_limit_converges(task):
  x, y, _, _ = task
  # Linear residual networks: closed equations, so no Monte Carlo noise hides
  # the finite-depth corrections.
  conv = dmft.infinite_depth_limit(x[:4], y[:4], n_blocks=(2, 4, 8),
                                   gamma0=1.0, lr=0.2, steps=6,
                                   activation="linear", exact_linear=True)
  diffs = np.max(np.abs(np.diff(conv.loss, axis=0)), axis=1)
  assert diffs[1] < diffs[0]  # finite-depth corrections shrink
  assert conv.exponent[0] < 0
  assert np.all(np.isfinite(conv.loss_infinite))
