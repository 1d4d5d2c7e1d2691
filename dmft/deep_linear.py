"""Deep linear networks: the closed DMFT equations, solved without sampling."""
from dmft import deep
from dmft import results


def solve_deep_linear(X, y, *, depth, gamma0=1.0, lr=1.0, steps=50,
                      X_test=None, y_test=None, W_std=1.0, input_std=1.0,
                      readout_std=1.0, residual=False, branch_multiplier=None,
                      damping=1.0, tol=None, max_iterations=200,
                      kernel_times=None,
                      raise_on_nonconvergence=True) -> results.DMFTResult:
  """DMFT of a deep linear network by its algebraic matrix equations.

  Bordelon and Pehlevan (2022), Sec. 5 (deep linear networks), in discrete
  time: every field is a linear map of the Gaussian sources, so the kernels
  Phi^l = H_u C_u H_u^T + H_r C_r H_r^T, G^l likewise, and the responses
  A^l, B^l are the (deterministic) coefficients of the fields on the sources;
  these closed equations are iterated to `tol`.

  Args: see `dmft.solve_deep` (no activation and no sampling).

  Returns:
    A `DMFTResult` with mc_error = 0.
  """
  return deep.solve_deep(
      X, y, depth=depth, activation="linear", gamma0=gamma0, lr=lr,
      steps=steps, n_samples=2, seed=0, X_test=X_test, y_test=y_test,
      W_std=W_std, input_std=input_std, readout_std=readout_std,
      residual=residual, branch_multiplier=branch_multiplier,
      damping=damping, tol=tol, max_iterations=max_iterations,
      kernel_times=kernel_times,
      raise_on_nonconvergence=raise_on_nonconvergence, exact_linear=True)
