"""Writes tests/fixtures/dmft_pre_refactor.json: DMFT results of the solvers before `dmft.solve`.

Run it in a worktree of the commit before 5c467cd (the refactor that made the DMFT read
the `kernels.stax` description), with the old package first on the path::

  git worktree add /tmp/dmft_pre 5c467cd^
  cd /tmp/dmft_pre && PYTHONPATH=/tmp/dmft_pre /work/main/.venv/bin/python \\
      /work/main/tests/dmft/make_pre_refactor_fixture.py /work/main/tests/fixtures/dmft_pre_refactor.json
  git worktree remove /tmp/dmft_pre --force

It calls the old public solvers (solve_two_layer, solve_deep, solve_deep_linear,
solve_residual) in float64 on a small fixed problem and records, for each case, the
exact arguments, the loss curves (train and test), the Monte Carlo standard error of the
train loss, the final NTK on the training points, the iteration count and residual, and
the commit hash it ran on. `tests/dmft/test_same_numbers.py` solves the same networks
through `dmft.solve` and compares.

The two-layer solver's initial weights: since af504a7 they are drawn with NumPy from the
seed (`dmft.core.gaussian_draws`), before it with `jax.random`. So that the two-layer
comparison is exact, the ``two_layer_*`` cases run the old solver with the old sampler
swapped for that NumPy draw (everything else is the old code); ``two_layer_relu_jax_draws``
is the old solver untouched, with its own draws. The deep solver draws its samples with
`jax.random` from the same key before and after.
"""
import json
import pathlib
import subprocess
import sys

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import dmft  # noqa: E402
from dmft import two_layer  # noqa: E402

if hasattr(dmft, "solve"):
  sys.exit("this is the refactored dmft (it has dmft.solve); run in a worktree of 5c467cd^")

# The problem: P = 5 training points, 3 test points, D = 3 features.
_rng = np.random.default_rng(20261130)
X = _rng.standard_normal((5, 3))
Y = np.tanh(X @ np.array([1.0, -0.5, 0.25])) + 0.1 * _rng.standard_normal(5)
X_TEST = _rng.standard_normal((3, 3))
Y_TEST = np.tanh(X_TEST @ np.array([1.0, -0.5, 0.25]))

# (name, old solver, keyword arguments, numpy_draws)
CASES = [
    ("two_layer_relu", "solve_two_layer",
     dict(activation="relu", gamma0=0.8, lr=0.7, steps=8, n_samples=512, seed=3,
          W_std=1.2, readout_std=0.9), True),
    ("two_layer_erf", "solve_two_layer",
     dict(activation="erf", gamma0=1.5, lr=1.0, steps=8, n_samples=512, seed=5,
          W_std=1.0, readout_std=1.1), True),
    ("two_layer_relu_jax_draws", "solve_two_layer",
     dict(activation="relu", gamma0=0.8, lr=0.7, steps=8, n_samples=512, seed=3,
          W_std=1.2, readout_std=0.9), False),
    ("deep_relu", "solve_deep",
     dict(depth=2, activation="relu", gamma0=1.0, lr=0.5, steps=4, n_samples=128,
          seed=1, W_std=1.1, input_std=1.0, readout_std=1.0), False),
    ("deep_linear", "solve_deep_linear",
     dict(depth=3, gamma0=1.2, lr=0.4, steps=5, W_std=0.9, input_std=1.1,
          readout_std=1.0, damping=1.0), False),
    ("residual_relu", "solve_residual",
     dict(n_blocks=2, activation="relu", gamma0=1.0, lr=0.5, steps=4, n_samples=128,
          seed=2, W_std=1.0, input_std=1.0, readout_std=1.0), False),
]


def _numpy_draws(seed):
  """Replaces the old sampler by the NumPy draw of `dmft.core.gaussian_draws(seed, ...)`."""
  original = two_layer._initial_state

  def initial_state(x_all, key, w_std, readout_std, *, act, n_half):
    phi0, g0, ntk0, _, _ = original(x_all, key, w_std, readout_std, act=act,
                                    n_half=n_half)
    dtype = np.dtype(x_all.dtype)
    rng = np.random.default_rng(seed)
    a_half = rng.standard_normal((n_half,)).astype(dtype)
    w_half = rng.standard_normal((n_half, x_all.shape[1])).astype(dtype)
    return phi0, g0, ntk0, a_half, w_half

  return original, initial_state


def _solve(solver, kwargs, numpy_draws):
  fn = getattr(dmft, solver)
  if not numpy_draws:
    return fn(X, Y, X_test=X_TEST, y_test=Y_TEST, **kwargs)
  original, patched = _numpy_draws(kwargs["seed"])
  two_layer._initial_state = patched
  try:
    return fn(X, Y, X_test=X_TEST, y_test=Y_TEST, **kwargs)
  finally:
    two_layer._initial_state = original


def main(out_path):
  commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
  cases = {}
  for name, solver, kwargs, numpy_draws in CASES:
    r = _solve(solver, kwargs, numpy_draws)
    cases[name] = dict(
        solver=solver, kwargs=kwargs,
        draws="numpy" if numpy_draws else "jax",
        tol=float(r.info["tol"]),
        loss=r.loss.tolist(), test_loss=r.test_loss.tolist(),
        mc_error=np.asarray(r.mc_error).tolist(),
        final_ntk=np.asarray(r.final_ntk).tolist(),
        n_iterations=int(r.n_iterations), residual=float(r.residual),
        converged=bool(r.converged))
    print(f"{name}: final loss {r.loss[-1]!r}, iterations {r.n_iterations}, "
          f"residual {r.residual:.3g}")
  fixture = dict(
      description="DMFT results of the solvers before dmft.solve (written by "
                  "tests/dmft/make_pre_refactor_fixture.py), float64",
      commit=commit, jax_version=jax.__version__,
      X=X.tolist(), y=Y.tolist(), X_test=X_TEST.tolist(), y_test=Y_TEST.tolist(),
      cases=cases)
  pathlib.Path(out_path).write_text(json.dumps(fixture, indent=1) + "\n")
  print(f"wrote {out_path} (commit {commit})")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "dmft_pre_refactor.json")
