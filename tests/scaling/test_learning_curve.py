"""Eigenlearning theory: self-consistency, limits, spectra, and KRR simulation."""
import jax
import numpy as np
import pytest

import scaling
from scaling import krr
from scaling import sphere

DIM = 6


def test_kappa_solves_its_equation_and_learnabilities_sum():
  lam = 1.0 / np.arange(1, 2001)**1.5
  for n, ridge in [(10, 0.0), (100, 0.0), (100, 1e-2)]:
    kappa = float(scaling.solve_kappa(lam, n, ridge))
    lhs = np.sum(lam / (lam + kappa)) + ridge / kappa
    assert lhs == pytest.approx(n, rel=1e-4)
    learn = np.asarray(scaling.learnabilities(lam, n, ridge=ridge))
    assert learn.sum() == pytest.approx(n - ridge / kappa, rel=1e-4)


def test_limits_and_train_error_formula():
  lam = 1.0 / np.arange(1, 501)**2.0
  v = 1.0 / np.arange(1, 501)
  curve = scaling.learning_curve(lam, v, np.array([1e-6, 50.0]), ridge=0.1,
                                 noise=0.2)
  # No data: nothing learned, test error = target power + noise.
  assert curve.test_mse[0] == pytest.approx(np.sum(v**2) + 0.2, rel=1e-4)
  ridgeless = scaling.learning_curve(lam, v, 50.0, ridge=0.0, noise=0.2)
  assert ridgeless.train_mse == 0.0
  assert curve.train_mse[1] == pytest.approx(
      (0.1 / (50 * curve.kappa[1]))**2 * curve.test_mse[1], rel=1e-5)


def test_bad_input():
  with pytest.raises(ValueError, match="eigenvalues"):
    scaling.learning_curve([-1.0, 1.0], [1.0, 1.0], 10)
  with pytest.raises(ValueError, match="n"):
    scaling.learning_curve([1.0, 1.0], [1.0, 1.0], 0)
  with pytest.raises(ValueError, match="ridge"):
    scaling.learning_curve([1.0, 1.0], [1.0, 1.0], 10, ridge=-1.0)
  with pytest.raises(ValueError, match="same length"):
    scaling.learning_curve([1.0, 1.0], [1.0], 10)


def test_sphere_spectrum_sums_to_kernel_at_one():
  assert list(sphere.degeneracy(3, np.arange(4))) == [1, 3, 5, 7]
  assert list(sphere.degeneracy(DIM, np.arange(3))) == [1, 6, 20]
  mu, mult = sphere.dot_product_spectrum(lambda t: np.exp(t), DIM, 40)
  assert np.sum(mu * mult) == pytest.approx(np.e, rel=1e-7)
  mu, mult = sphere.dot_product_spectrum(sphere.relu_ntk, DIM, 80)
  assert np.sum(mu * mult) == pytest.approx(2.0, abs=0.01)
  assert np.all(mu[3::2] == 0.0)  # odd degrees >= 3 vanish for bias-free ReLU


def _target():
  rng = np.random.default_rng(0)
  dirs = rng.standard_normal((7, DIM))
  dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
  return sphere.legendre_target(dirs, [0.0, 1.0, 2.0, 3.0, 3.0, 0.0, 3.0],
                                DIM)


@pytest.mark.slow
@pytest.mark.parametrize("n,ridge,noise", [(100, 0.0, 0.1), (200, 0.1, 0.1),
                                           (100, 0.0, 0.0)])
def test_theory_matches_krr_on_sphere(n, ridge, noise):
  target_fn, power = _target()
  mu, mult = sphere.dot_product_spectrum(sphere.relu_ntk, DIM, 60)
  v = np.zeros_like(mu)
  v[:len(power)] = np.sqrt(power)
  theory = scaling.learning_curve(mu, v, n, ridge=ridge, noise=noise,
                                  multiplicity=mult)
  with jax.enable_x64(True):
    sim = krr.simulate_learning_curve(
        jax.random.key(n), lambda a, b: sphere.relu_ntk(a @ b.T),
        lambda k, m: sphere.sample_sphere(k, m, DIM), target_fn, n,
        ridge=ridge, noise=noise, num_draws=16, num_test=1500)
  rel = sim["test_mse"] / float(theory.test_mse) - 1
  print(f"n={n} ridge={ridge} noise={noise}: theory {float(theory.test_mse):.4f}"
        f" sim {sim['test_mse']:.4f} +- {sim['test_se']:.4f} rel {rel:+.3%}")
  assert abs(rel) < 0.04
  if ridge > 0:
    rel_tr = sim["train_mse"] / float(theory.train_mse) - 1
    print(f"  train: theory {float(theory.train_mse):.5f} sim "
          f"{sim['train_mse']:.5f} rel {rel_tr:+.3%}")
    assert abs(rel_tr) < 0.1


@pytest.mark.slow
def test_network_ntk_learning_curve_matches_krr():
  """ReLU network NTK from kernels/: spectrum from data and from Funk-Hecke, theory vs KRR."""
  try:
    from kernels import stax  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    pytest.skip(f"kernels.stax is not importable: {e}")
  _, _, kernel_fn = stax.serial(stax.Dense(512, W_std=1.4, b_std=0.1),
                                stax.Relu(), stax.Dense(1))
  ntk = lambda a, b: kernel_fn(a, b, "ntk")
  target_fn, power = _target()
  n, noise = 100, 0.1
  with jax.enable_x64(True):
    x = sphere.sample_sphere(jax.random.key(11), 2500, DIM)
    lam, v = scaling.empirical_spectrum(ntk(x, x), target_fn(x))
    nystrom = float(scaling.learning_curve(lam, v, n, noise=noise).test_mse)

    # On the sphere the network NTK is a dot-product kernel: its exact
    # spectrum follows from k(t) along a great circle.
    def k_of_t(t):
      e0 = np.eye(DIM)[:1]
      pts = np.zeros((len(t), DIM))
      pts[:, 0], pts[:, 1] = t, np.sqrt(np.clip(1 - t**2, 0, None))
      return np.asarray(ntk(e0, pts))[0]

    mu, mult = sphere.dot_product_spectrum(k_of_t, DIM, 60)
    coeffs = np.zeros_like(mu)
    coeffs[:len(power)] = np.sqrt(power)
    exact = float(scaling.learning_curve(mu, coeffs, n, noise=noise,
                                         multiplicity=mult).test_mse)
    sim = krr.simulate_learning_curve(
        jax.random.key(5), ntk, lambda k, m: sphere.sample_sphere(k, m, DIM),
        target_fn, n, noise=noise, num_draws=64, num_test=1500)
  rel = sim["test_mse"] / exact - 1
  rel_nys = sim["test_mse"] / nystrom - 1
  print(f"network NTK n={n}: sim {sim['test_mse']:.4f} +- {sim['test_se']:.4f};"
        f" theory with the Funk-Hecke spectrum {exact:.4f} ({rel:+.3%}), with"
        f" the 2500-point Nystrom spectrum {nystrom:.4f} ({rel_nys:+.3%})")
  assert abs(rel) < 0.03
  # The Nystrom estimate from 2500 points biases the prediction by a few
  # percent (3.4% here).
  assert abs(rel_nys) < 0.06
