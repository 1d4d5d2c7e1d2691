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


def _least_squares_mc(lam, v, n, noise, draws=80, seed=0):
  """Mean and standard error of train and test MSE of least squares by simulation.

  Kernel features sqrt(lambda_k) z_k with z_k iid N(0, 1) (orthonormal
  eigenfunctions), target sum_k v_k z_k plus noise of variance `noise`; the
  ridgeless predictor is least squares on the features with lambda_k > 0
  (the same fit as on the z_k, since least squares ignores column scales),
  and its test error is exact given the weights.
  """
  rng = np.random.default_rng(seed)
  pos = lam > 0
  train, test = [], []
  for _ in range(draws):
    z = rng.standard_normal((n, len(lam)))
    y = z @ v + np.sqrt(noise) * rng.standard_normal(n)
    feats = z[:, pos]
    w = np.linalg.solve(feats.T @ feats, feats.T @ y)
    train.append(np.mean((feats @ w - y)**2))
    test.append(np.sum((w - v[pos])**2) + np.sum(v[~pos]**2) + noise)
  se = lambda a: np.std(a) / np.sqrt(draws)
  return np.mean(train), se(train), np.mean(test), se(test)


@pytest.mark.parametrize("num_zero", [0, 40])
def test_ridgeless_above_the_number_of_modes_is_least_squares(num_zero):
  """n = 600 > M = 300 modes: train and test MSE of least squares, by simulation."""
  k = np.arange(1.0, 301.0)
  lam = np.concatenate([k**-1.5, np.zeros(num_zero)])  # zero modes: unlearnable
  v = np.concatenate([1.0 / k, np.full(num_zero, 0.05)])
  theory = scaling.learning_curve(lam, v, [600], ridge=0.0, noise=0.1)
  train, train_se, test, test_se = _least_squares_mc(lam, v, 600, 0.1)
  print(f"zero modes {num_zero}: train theory {float(theory.train_mse[0]):.5f}"
        f" sim {train:.5f} +- {train_se:.5f}; test theory "
        f"{float(theory.test_mse[0]):.4f} sim {test:.4f} +- {test_se:.4f}")
  assert abs(float(theory.train_mse[0]) - train) < 4 * train_se + 1e-3 * train
  assert abs(float(theory.test_mse[0]) - test) < 4 * test_se + 0.01 * test


def _all_fields(curve):
  return np.stack([np.asarray(getattr(curve, f), np.float64) for f in
                   ("kappa", "overfitting", "test_mse", "train_mse")])


@pytest.mark.parametrize("lam,v,n,ridge,noise", [
    (np.logspace(0, -20, 50), np.ones(50), [10, 40], 0.0, 0.0),
    (np.logspace(0, -30, 50), np.ones(50), [5, 40, 80], 0.0, 0.1),
    (np.arange(1, 301.0)**-1.5, 1 / np.arange(1, 301.0), [10, 299, 600], 0.0,
     0.1),
    (np.arange(1, 301.0)**-1.5, 1 / np.arange(1, 301.0), [10, 300, 600], 1e-9,
     0.1)])
def test_float32_agrees_with_float64(lam, v, n, ridge, noise):
  low = _all_fields(scaling.learning_curve(lam, v, n, ridge=ridge, noise=noise))
  with jax.enable_x64(True):
    high = _all_fields(scaling.learning_curve(lam, v, n, ridge=ridge,
                                              noise=noise))
  print("float32", low, "\nfloat64", high)
  assert np.all(np.isfinite(high)) and np.all(np.isfinite(low))
  np.testing.assert_allclose(low, high, rtol=1e-5, atol=1e-30)
  # And kappa solves eq. (1) in float64.
  for kappa, size in zip(high[0], n):
    if kappa > 0:
      assert np.sum(lam / (lam + kappa)) + ridge / kappa == pytest.approx(
          size, rel=1e-8)


def test_bad_input():
  with pytest.raises(ValueError, match="eigenvalues"):
    scaling.learning_curve([-1.0, 1.0], [1.0, 1.0], 10)
  with pytest.raises(ValueError, match="n"):
    scaling.learning_curve([1.0, 1.0], [1.0, 1.0], 0)
  with pytest.raises(ValueError, match="ridge"):
    scaling.learning_curve([1.0, 1.0], [1.0, 1.0], 10, ridge=-1.0)
  with pytest.raises(ValueError, match="same length"):
    scaling.learning_curve([1.0, 1.0], [1.0], 10)
  # NaN and inf used to pass the sign checks (NaN <= 0 is False) and return numbers
  # (test_mse 0.0 with a NaN multiplicity, kappa 0 or 2.72 from solve_kappa).
  for mult in ([1.0, np.nan], [1.0, np.inf], [1.0, 0.0]):
    with pytest.raises(ValueError, match="multiplicity"):
      scaling.learning_curve(np.array([1.0, 0.5]), np.array([1.0, 1.0]), 10,
                             multiplicity=np.array(mult))
    with pytest.raises(ValueError, match="multiplicity"):
      scaling.solve_kappa([1.0, 0.5], 1, multiplicity=np.array(mult))
  with pytest.raises(ValueError, match="eigenvalues"):
    scaling.solve_kappa([1.0, -0.5], 1)
  with pytest.raises(ValueError, match="eigenvalues"):
    scaling.learnabilities([1.0, np.nan], 1)
  with pytest.raises(ValueError, match="`n`"):
    scaling.solve_kappa([1.0, 0.5], -3)
  with pytest.raises(ValueError, match="ridge"):
    scaling.learnabilities([1.0, 0.5], 1, ridge=np.nan)
  with pytest.raises(ValueError, match="finite"):
    scaling.empirical_spectrum(np.array([[1.0, np.nan], [np.nan, 1.0]]), np.ones(2))
  with pytest.raises(ValueError, match="symmetric"):
    scaling.empirical_spectrum(np.array([[1.0, 0.5], [0.1, 1.0]]), np.ones(2))
  # Traced values (jit, grad) are not checked, and the checks change no value.
  lam = np.array([1.0, 0.5, 0.25])
  assert float(jax.jit(lambda l: scaling.solve_kappa(l, 1.0))(lam)) == pytest.approx(
      float(scaling.solve_kappa(lam, 1.0)), rel=1e-6)
  assert np.isfinite(float(jax.grad(lambda r: scaling.solve_kappa(lam, 1.0, r))(0.1)))


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
