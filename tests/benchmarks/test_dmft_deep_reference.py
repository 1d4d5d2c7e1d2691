"""The deep DMFT reference loop (benchmarks/dmft_deep_reference.py) reduces to kernel gradient descent when lazy."""
import numpy as np

from benchmarks import dmft_deep_reference
from dmft import deep


def test_lazy_limit_is_gradient_descent_with_the_exact_ntk():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(4, 3))
  y = np.array([1.0, -1.0, 0.5, -0.5])
  steps, lr = 6, 1.0
  loss, f, ntk = dmft_deep_reference.solve_deep_reference(
      x, y, depth=2, gamma0=1e-6, lr=lr, steps=steps, n_samples=20000, n_outer=2, seed=1)
  _, _, ntk0 = deep.initial_kernels("relu", x, 4, 2)
  ntk0 = np.asarray(ntk0)
  # The sampled NTK stays the network's at initialisation (Monte Carlo error ~ 1/sqrt(n)).
  assert np.max(np.abs(ntk[-1] - ntk0)) / np.max(np.abs(ntk0)) < 0.05
  assert np.max(np.abs(ntk[-1] - ntk[0])) / np.max(np.abs(ntk0)) < 0.01
  err, expected = y.copy(), []
  for _ in range(steps + 1):
    expected.append(0.5 * np.mean(err ** 2))
    err = err - lr / 4 * ntk0 @ err
  np.testing.assert_allclose(loss, expected, rtol=0.1, atol=1e-4)
  assert np.all(np.diff(loss) < 0)
