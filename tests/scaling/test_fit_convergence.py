"""A fit is `converged` only at a first-order optimum, never on a plateau."""
import warnings

import jax
import numpy as np
import pytest

import scaling
from scaling import chinchilla

TRUE = dict(A=400.0, B=410.0, E=1.7, alpha=0.34, beta=0.28)


def _noiseless_runs():
  """30 noiseless runs, N log-uniform in 1e7..1e10, D in 1e9..1e12."""
  rng = np.random.default_rng(0)
  n, d = 10**rng.uniform(7, 10, 30), 10**rng.uniform(9, 12, 30)
  return n, d, TRUE["E"] + TRUE["A"] / n**TRUE["alpha"] + TRUE["B"] / d**TRUE["beta"]


def _fit_recording(*args, **kwargs):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fit = scaling.fit_chinchilla(*args, **kwargs)
  return fit, [str(w.message) for w in caught
               if issubclass(w.category, RuntimeWarning)]


def test_converged_starts_pass_the_first_order_test():
  """After 20 iterations, every start flagged converged is first-order optimal."""
  n, d, loss = _noiseless_runs()
  with jax.enable_x64(True):
    res = chinchilla._solve(chinchilla.hoffmann_grid(), np.ones(30), np.log(n),
                            np.log(d), np.log(loss), 1e-3, 20)
  scale = np.maximum(np.abs(res.value), 1.0)
  conv = res.converged
  worst = np.max(res.grad_norm[conv] / scale[conv]) if conv.any() else 0.0
  print(f"{conv.sum()} of {len(conv)} starts flagged converged after 20 "
        f"iterations; largest relative gradient among them {worst:.2e}")
  assert worst <= 100 * chinchilla.GTOL


@pytest.mark.parametrize("max_iter", [20, 50])
def test_unfinished_chinchilla_fit_is_flagged(max_iter):
  n, d, loss = _noiseless_runs()
  fit, messages = _fit_recording(n, d, loss, max_iter=max_iter)
  resid = np.max(np.abs(fit.predict(n, d) / loss - 1))
  print(f"max_iter={max_iter}: alpha {fit.alpha:.4f} beta {fit.beta:.4f} "
        f"max residual {resid:.2%} converged {fit.converged}")
  assert not fit.converged
  assert any(f"max_iter={max_iter}" in m for m in messages), messages


def test_default_chinchilla_fit_recovers_noiseless_law():
  n, d, loss = _noiseless_runs()
  fit, messages = _fit_recording(n, d, loss)
  resid = np.max(np.abs(fit.predict(n, d) / loss - 1))
  print("default fit", fit.params, f"max residual {resid:.1e}")
  assert fit.converged and not messages
  for k, v in TRUE.items():
    assert getattr(fit, k) == pytest.approx(v, rel=1e-6), k
  assert resid < 1e-9


def test_power_law_flags_unfinished_fit_and_recovers_noiseless_law():
  x = np.geomspace(1e2, 1e6, 30)
  y = 2.0 + 30.0 * x**-0.5
  with pytest.warns(RuntimeWarning, match="max_iter=3"):
    short = scaling.fit_power_law(x, y, max_iter=3)
  assert not short.converged
  fit = scaling.fit_power_law(x, y)
  print("power law", fit.A, fit.E, fit.alpha, "converged", fit.converged)
  assert fit.converged
  np.testing.assert_allclose([fit.A, fit.E, fit.alpha], [30.0, 2.0, 0.5],
                             rtol=1e-6)
