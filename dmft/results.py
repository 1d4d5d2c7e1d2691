"""Result containers returned by the DMFT solvers."""
import dataclasses
from typing import Any, Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class DMFTResult:
  """Order parameters and predictions of a DMFT solution.

  Time runs over gradient-descent steps t = 0..steps (steps + 1 entries).

  Attributes:
    loss: (steps+1,) train loss (1/(2P)) sum_mu (f_mu(t) - y_mu)^2.
    f_train: (steps+1, P) predictions on the training points.
    f_test: (steps+1, P_test) predictions on test points, or None.
    test_loss: (steps+1,) test loss, or None.
    ntk: (steps+1, P, P) NTK on training points at each step (in units of
      the base learning rate, as `kernels` reports it).
    ntk_test_train: (steps+1, P_test, P) or None.
    kernel_times: (K,) steps at which the two-time kernels are reported.
    phi: (L, K, K, P, P) feature kernels Phi^l(t, s) of each hidden layer on
      training points.
    g: (L, K, K, P, P) gradient kernels G^l(t, s).
    n_iterations: fixed-point iterations performed.
    residual: last relative change of the order parameters.
    converged: residual <= tol, or (sampled deep solves) the residual stalled below
      the Monte Carlo floor info["mc_floor"] (info["stalled"]).
    jitter: largest relative diagonal jitter added to a covariance before
      sampling (0.0 when none was needed).
    mc_error: (steps+1,) Monte Carlo standard error of the train loss (0 for
      closed-form solutions): the delta method with the error signal held fixed, an
      upper bound (3-6x the spread over seeds measured for two-layer solves;
      docs/dmft.md).
    info: solver settings and diagnostics.
  """
  loss: np.ndarray
  f_train: np.ndarray
  f_test: Optional[np.ndarray]
  test_loss: Optional[np.ndarray]
  ntk: np.ndarray
  ntk_test_train: Optional[np.ndarray]
  kernel_times: np.ndarray
  phi: np.ndarray
  g: np.ndarray
  n_iterations: int
  residual: float
  converged: bool
  jitter: float
  mc_error: np.ndarray
  info: dict = dataclasses.field(default_factory=dict)

  @property
  def final_ntk(self) -> np.ndarray:
    return self.ntk[-1]

  def summary(self) -> dict:
    """Scalar summary, JSON-serialisable."""
    out = {
        "final_loss": float(self.loss[-1]),
        "n_iterations": int(self.n_iterations),
        "residual": float(self.residual),
        "converged": bool(self.converged),
        "jitter": float(self.jitter),
    }
    if self.test_loss is not None:
      out["final_test_loss"] = float(self.test_loss[-1])
    return out


def to_numpy(x: Any):
  return None if x is None else np.asarray(x)
