"""Power-law random features: phases, exponents, theory against SGD simulation."""

import numpy as np
import pytest

import scaling
from scaling import plrf
from scaling import plrf_frontier
from scaling import plrf_phases

# One (alpha, beta) inside each phase.
POINTS = {"Ia": (0.8, 0.3), "II": (1.0, 0.7), "III": (0.7, 1.0),
          "Ib": (0.45, 0.45), "Ic": (0.2, 1.0), "IVa": (0.35, 1.0),
          "IVb": (0.27, 1.0)}


def test_phases_and_exponents():
  for phase, (a, b) in POINTS.items():
    assert scaling.plrf_phase(a, b) == phase
  out = scaling.plrf_compute_optimal(0.8, 0.3)
  assert out["d_exponent"] == pytest.approx(1 / 2.6)
  assert out["loss_exponent"] == pytest.approx(1.2 / 2.6)
  out = scaling.plrf_compute_optimal(0.7, 1.0)
  assert out == {"phase": "III", "d_exponent": 0.5,
                 "loss_exponent": pytest.approx(1 - 1 / 2.8)}
  assert scaling.plrf_compute_optimal(0.45, 0.45) == {
      "phase": "Ib", "d_exponent": 0.5, "loss_exponent": pytest.approx(0.4)}
  assert scaling.plrf_compute_optimal(0.35, 1.0) == {
      "phase": "IVa", "d_exponent": 0.5, "loss_exponent": 0.35}
  out = scaling.plrf_compute_optimal(0.2, 1.0)      # Ic
  assert out["d_exponent"] == pytest.approx(1.4 / 2.4)
  assert out["loss_exponent"] == pytest.approx(0.4 * 1.4 / 2.4)
  out = scaling.plrf_compute_optimal(0.27, 1.0)     # IVb
  assert out["d_exponent"] == pytest.approx(0.73 / 1.19)
  assert out["loss_exponent"] == pytest.approx(1.54 * 0.46 / 2.38)


def _exponents(a, b):
  out = scaling.plrf_compute_optimal(a, b)
  return out["phase"], out["d_exponent"], out["loss_exponent"]


@pytest.mark.parametrize("boundary", [
    ("2 alpha = 1, 2 beta < 1", lambda e: (0.5 + e, 0.3)),
    ("2 alpha = 1, beta > alpha", lambda e: (0.5 + e, 0.9)),
    ("2 beta = 1, 2 alpha > 1", lambda e: (0.8, 0.5 + e)),
    ("beta = alpha", lambda e: (1.0 - e, 1.0)),
    ("2 beta = 1, alpha < 1/4", lambda e: (0.2, 0.5 + e)),
    ("2 beta = 1, IVb", lambda e: (0.27, 0.5 + e)),
    ("2 beta = 1, IVa", lambda e: (0.4, 0.5 + e)),
    ("alpha = 1/4", lambda e: (0.25 + e, 0.9)),
    ("alpha = 1 - 1/sqrt(2)", lambda e: (plrf_phases.ALPHA_IV + e, 0.9)),
])
def test_exponents_continuous_across_phase_boundaries(boundary):
  """Exponents agree on both sides of each boundary (d* excepted at a_c)."""
  name, point = boundary
  lo, hi = _exponents(*point(-1e-9)), _exponents(*point(1e-9))
  assert lo[0] != hi[0], name
  assert lo[2] == pytest.approx(hi[2], abs=1e-6), name
  if name != "alpha = 1 - 1/sqrt(2)":
    assert lo[1] == pytest.approx(hi[1], abs=1e-6), name
  else:   # loss flat in d between f^{1/2} and f^{xi_IVb}: d* jumps.
    assert hi[1] == 0.5 and lo[1] > 0.55


def test_bad_input():
  with pytest.raises(ValueError, match="alpha"):
    scaling.plrf_compute_optimal(0.0, 1.0)
  with pytest.raises(ValueError, match="2 alpha \\+ 2 beta"):
    scaling.plrf_compute_optimal(0.3, 0.1)
  with pytest.raises(ValueError, match="finite"):
    scaling.plrf_phase(float("nan"), 1.0)
  with pytest.raises(ValueError, match="v"):
    plrf.make_problem(1.0, 0.5, d=32, v=16)
  with pytest.raises(ValueError, match="exactly one"):
    plrf_frontier.theory_compute_frontier(0.8, 0.3, [8, 16, 32],
                                          max_flops=1e4)


@pytest.mark.parametrize("alpha,beta,v", [(0.8, 0.3, 512), (0.7, 1.0, 512),
                                          (0.45, 0.45, 256), (0.2, 1.0, 256)])
def test_chunked_recursion_matches_exact(alpha, beta, v):
  """Geometric chunks reproduce the step-by-step recursion, to second order."""
  problem = plrf.make_problem(alpha, beta, d=64, v=v, seed=1)
  _, exact = plrf.theory_loss_curve(problem, 20000, num_records=20000)
  errors = []
  for growth in (0.1, 0.05):
    rec, loss = plrf.theory_loss_curve_log(problem, 20000, growth=growth)
    assert rec[-1] == 20000
    errors.append(np.max(np.abs(loss / exact[rec] - 1)))
  print(f"({alpha}, {beta}) max rel error: growth 0.1 {errors[0]:.1e}, "
        f"0.05 {errors[1]:.1e}")
  assert errors[1] < 1e-4
  assert errors[0] / errors[1] > 2.5


def test_gradient_descent_curve_closed_form():
  """Without SGD noise each mode decays as (1 - gamma lambda)^(2r)."""
  problem = plrf.make_problem(0.35, 1.0, d=48, v=192, seed=2)
  gamma = plrf.default_learning_rate(problem)
  rec, loss = plrf.theory_loss_curve_log(problem, 5000, sgd_noise=False)
  lam = problem.eigenvalues
  c0 = (problem.eigenvectors.T @ problem.theta_star)**2
  closed = problem.loss_star + 0.5 * np.sum(
      lam * c0 * (1 - gamma * lam)[None, :]**(2 * rec[:, None]), axis=1)
  np.testing.assert_allclose(loss, closed, rtol=1e-10)


def test_sgd_noise_linear_in_learning_rate():
  """The SGD part of the loss at fixed gamma r scales with gamma.

  This is the term that, with gamma ~ d^(2 alpha - 1), separates phases IVa
  and IVb (plrf_phases): halving gamma at the same x = gamma r halves the
  difference between the SGD and gradient-descent curves.
  """
  problem = plrf.make_problem(0.35, 1.0, d=256, v=1024, seed=0)
  gamma = plrf.default_learning_rate(problem)
  xs = np.array([2.0, 4.0, 8.0])
  noise = []
  for lr in (gamma, gamma / 2):
    steps = int(xs[-1] / lr) + 1
    rec, sgd = plrf.theory_loss_curve_log(problem, steps, learning_rate=lr)
    _, gd = plrf.theory_loss_curve_log(problem, steps, learning_rate=lr,
                                       sgd_noise=False)
    noise.append(np.interp(xs, lr * rec, sgd - gd))
  ratio = noise[0] / noise[1]
  print("noise ratio at x = 2, 4, 8:", np.round(ratio, 3))
  assert np.all(np.abs(ratio - 2) < 0.15)


@pytest.mark.slow
@pytest.mark.parametrize("alpha,beta,v", [
    (0.8, 0.3, 384), (1.0, 0.7, 384), (0.7, 1.0, 384),   # Ia, II, III
    (0.45, 0.45, 192), (0.35, 1.0, 192), (0.2, 1.0, 192)])  # Ib, IVa, Ic
def test_theory_matches_sgd_simulation(alpha, beta, v):
  problem = plrf.make_problem(alpha, beta, d=48, v=v, seed=0)
  steps, records = 3000, 15
  _, theory = plrf.theory_loss_curve(problem, steps, num_records=records)
  _, sims = plrf.simulate_sgd(problem, steps, num_records=records,
                              seeds=range(8))
  mean = sims.mean(0)
  rel = mean[1:] / theory[1:] - 1
  se = sims.std(0)[1:] / np.sqrt(sims.shape[0]) / mean[1:]
  print(f"phase {scaling.plrf_phase(alpha, beta)}: max |rel diff| "
        f"{np.abs(rel).max():.3f}, at end {rel[-1]:+.3f} (s.e. {se[-1]:.3f})")
  assert theory[0] == pytest.approx(mean[0])
  assert np.all(np.abs(rel) < 0.15)
  assert abs(rel[-1]) < 0.06


@pytest.mark.slow
def test_theory_frontier_loss_exponent_phase_ia():
  """Compute-optimal loss read off theory curves at d = 8..256 (phase Ia).

  At these sizes the loss exponent already matches the asymptotic one, while
  d* is still far from its asymptote, so only the loss exponent is checked.
  """
  out = plrf_frontier.theory_compute_frontier(
      0.8, 0.3, [8, 16, 32, 64, 128, 256], v=1024, max_flops=4e6)
  expected = scaling.plrf_compute_optimal(0.8, 0.3)["loss_exponent"]
  print("frontier loss exponent", out["loss_exponent"], "theory", expected,
        "d exponent", out["d_exponent"])
  assert out["loss_exponent"] == pytest.approx(expected, abs=0.05)


@pytest.mark.slow
def test_theory_frontier_phase_ib():
  """Phase Ib (0.45, 0.45), v = 4d, d = 32..1024: d* ~ f^(1/2).

  loss* sits at the capacity level F_0(d*), whose exponent converges slowly
  (-d log P*/d log d is 0.67 here against 2 alpha + 2 beta - 1 = 0.8), so the
  loss exponent is checked against d*'s exponent times that measured slope.
  """
  out = plrf_frontier.check_point(0.45, 0.45, d_max=1024, seeds=range(4),
                                  max_flops=1e10)
  print({k: out[k] for k in ("d_exponent", "theory_d_exponent",
                             "loss_exponent", "theory_loss_exponent",
                             "capacity_slope")})
  assert out["phase"] == "Ib"
  assert out["d_exponent"] == pytest.approx(out["theory_d_exponent"], abs=0.05)
  assert out["loss_exponent"] == pytest.approx(
      out["d_exponent"] * out["capacity_slope"], abs=0.04)
  assert out["loss_exponent"] == pytest.approx(out["theory_loss_exponent"],
                                               abs=0.08)


def test_divergent_learning_rate_is_refused():
  problem = plrf.make_problem(0.8, 0.3, d=32, v=128, seed=0)
  too_big = 3.0 / float(np.sum(problem.eigenvalues))
  with pytest.raises(ValueError, match="diverge"):
    plrf.theory_loss_curve_log(problem, 100, learning_rate=too_big)
  # Just inside the bound the curve stays finite.
  rec, loss = plrf.theory_loss_curve_log(
      problem, 100, learning_rate=0.5 / float(np.sum(problem.eigenvalues)))
  assert np.all(np.isfinite(loss))
