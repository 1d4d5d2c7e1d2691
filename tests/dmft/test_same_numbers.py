"""dmft.solve gives the numbers of the solvers it replaced (before 5c467cd).

tests/fixtures/dmft_pre_refactor.json holds float64 results of the old public solvers
(solve_two_layer, solve_deep, solve_deep_linear, solve_residual) on a small problem,
written by tests/dmft/make_pre_refactor_fixture.py in a worktree of 5c467cd^ (the
commit is recorded in the fixture). Each case here builds the same network with
`kernels.stax` and solves it through `dmft.solve`:

* two-layer (relu, erf): float tolerance. The solve is a Monte Carlo average over
  neurons, but on identical draws it is a deterministic function of them: the fixture
  ran the old solver with the NumPy draw the current one makes from the seed (see the
  script), so only rounding differs (the initial kernels now come from
  ``net.kernel_fn`` instead of the old closed forms).
* deep linear: float tolerance (exact equations, no sampling).
* deep relu and residual relu: float tolerance too, because both versions draw the
  quenched samples with ``jax.random`` from the same key; the fixed-point iteration
  must also stop at the same iteration, which is checked. ``tol`` is passed
  explicitly, equal to the old default max(1e-7, 0.2 / sqrt(n_samples)), so that the
  comparison does not depend on the default stopping rule. The old solvers took
  ReLU's phi'' as zero, so these two run without the kink's delta term
  (``kink_delta=False``; the term is checked against finite networks in test_deep.py).
* two-layer relu with the old solver's own ``jax.random`` draws: different draws, so
  within Monte Carlo error (5 standard errors of the difference of two independent
  estimates, from both results' ``mc_error``).

Measured (float64): largest differences 3e-17 (two-layer losses), 9e-16 (two-layer
final NTK), 0 (deep linear), 1.4e-15 / 6e-14 (deep relu loss / NTK), 7.5e-16 / 7.4e-14
(residual loss / NTK), with the same iteration counts. The time goes to compiling the
deep solver once per case (deep relu, deep linear, residual): the residual case is
marked slow.
"""
import functools
import json
import pathlib

import jax
import numpy as np
import pytest

import dmft
from dmft import deep
from kernels import parameterization as pz
from kernels import stax

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "dmft_pre_refactor.json"
WIDTH = 64  # the DMFT does not depend on it
# float64 results computed in two ways that differ only in rounding (kernels from
# net.kernel_fn vs the old closed forms): measured differences are far below these.
RTOL, ATOL = 1e-9, 1e-12


@pytest.fixture(scope="module")
def old():
  return json.loads(FIXTURE.read_text())


def _act(name):
  return {"relu": stax.Relu(), "erf": stax.Erf()}[name]


def _net(solver, kw):
  """The stax network the old solver's arguments describe."""
  g = kw["gamma0"]
  if solver == "solve_two_layer":
    p = pz.mup(g)
    return stax.serial(stax.Dense(WIDTH, kw["W_std"], parameterization=p), _act(kw["activation"]),
                       stax.Dense(1, kw["readout_std"], parameterization=p))
  if solver in ("solve_deep", "solve_deep_linear"):
    p = pz.mup(g)
    act = [_act(kw["activation"])] if solver == "solve_deep" else []
    layers = [stax.Dense(WIDTH, kw["input_std"], parameterization=p), *act]
    for _ in range(kw["depth"] - 1):
      layers += [stax.Dense(WIDTH, kw["W_std"], parameterization=p), *act]
    return stax.serial(*layers, stax.Dense(1, kw["readout_std"], parameterization=p))
  assert solver == "solve_residual"
  p = pz.depth_mup(gamma0=g)  # branch multiplier n_blocks**-0.5, the old default
  act = _act(kw["activation"])
  blocks = [stax.Residual(stax.serial(act, stax.Dense(WIDTH, kw["W_std"], parameterization=p)),
                          parameterization=p) for _ in range(kw["n_blocks"])]
  return stax.serial(stax.Dense(WIDTH, kw["input_std"], parameterization=p), *blocks, act,
                     stax.Dense(1, kw["readout_std"], parameterization=p))


def _solve(old, name):
  case = old["cases"][name]
  kw = case["kwargs"]
  options = {k: kw[k] for k in ("seed", "n_samples", "damping") if k in kw}
  if case["solver"] in ("solve_deep", "solve_residual"):
    options["tol"] = case["tol"]  # the old default, stated
  with jax.enable_x64(True):
    new = dmft.solve(_net(case["solver"], kw), np.array(old["X"]), np.array(old["y"]),
                     lr=kw["lr"], steps=kw["steps"], X_test=np.array(old["X_test"]),
                     y_test=np.array(old["y_test"]), **options)
  assert new.info["dtype"] == "float64"
  return case, new


@pytest.mark.parametrize("name", [
    "two_layer_relu", "two_layer_erf", "deep_linear", "deep_relu",
    # (its own compiled program, the costliest of the deep ones: ~25 s cold under load)
    pytest.param("residual_relu", marks=pytest.mark.slow)])
def test_same_numbers(old, name, monkeypatch):
  if name in ("deep_relu", "residual_relu"):
    # The old solvers took ReLU's phi'' as zero; the kink's delta term (see
    # test_deep.py::test_relu_kinks_enter_the_responses) is left out to compare.
    monkeypatch.setattr(deep, "_solve", functools.partial(deep._solve, kink_delta=False))
  case, new = _solve(old, name)
  assert new.converged and case["converged"]
  assert new.n_iterations == case["n_iterations"]
  np.testing.assert_allclose(new.loss, case["loss"], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(new.test_loss, case["test_loss"], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(new.final_ntk, case["final_ntk"], rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(new.mc_error, case["mc_error"], rtol=RTOL, atol=ATOL)


def test_two_layer_other_draws_within_monte_carlo_error(old):
  case, new = _solve(old, "two_layer_relu_jax_draws")
  assert case["draws"] == "jax" and old["cases"]["two_layer_relu"]["draws"] == "numpy"
  se = np.hypot(new.mc_error, case["mc_error"])
  diff = np.abs(new.loss - case["loss"])
  assert np.all(diff <= 5 * se + ATOL), (diff / np.maximum(se, 1e-300)).max()
  assert diff[1:].max() > 0  # different draws: not the float comparison above


def test_fixture_records_its_commit(old):
  assert len(old["commit"]) == 40 and FIXTURE.stat().st_size < 100_000
