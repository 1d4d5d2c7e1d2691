"""Synthetic regression tasks with known structure for DMFT experiments."""
import numpy as np

from kernels import validation as val


def synthetic(n_train=12, n_test=8, dim=6, seed=0, target="sign"):
  """Inputs on the sphere of radius sqrt(dim) and a nonlinear teacher.

  Args:
    n_train, n_test: numbers of points.
    dim: input dimension D (K^x = X X^T / D has unit diagonal).
    seed: data seed.
    target: 'sign' (y = sign(x0 x1 + x2 / 2)), 'linear' (y = x0) or 'tanh'
      (y = tanh(2 x0 x1)).

  Returns:
    (X_train, y_train, X_test, y_test) as float32 numpy arrays.
  """
  n_train = val.check_int(n_train, "n_train", minimum=1)
  n_test = val.check_int(n_test, "n_test", minimum=0)
  dim = val.check_int(dim, "dim", minimum=3)
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n_train + n_test, dim))
  x *= np.sqrt(dim) / np.linalg.norm(x, axis=1, keepdims=True)
  if target == "sign":
    y = np.sign(x[:, 0] * x[:, 1] + 0.5 * x[:, 2])
  elif target == "linear":
    y = x[:, 0]
  elif target == "tanh":
    y = np.tanh(2 * x[:, 0] * x[:, 1])
  else:
    raise ValueError(f"target must be 'sign', 'linear' or 'tanh', got "
                     f"{target!r}")
  x, y = x.astype(np.float32), y.astype(np.float32)
  return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
