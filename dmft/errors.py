"""Errors raised by the DMFT solvers."""


class NonConvergenceError(RuntimeError):
  """The damped fixed-point iteration did not reach its tolerance.

  Attributes:
    residual: the last relative change of the order parameters.
    n_iterations: iterations performed.
  """

  def __init__(self, message, residual=float("nan"), n_iterations=0):
    super().__init__(message)
    self.residual = float(residual)
    self.n_iterations = int(n_iterations)


class DivergenceError(FloatingPointError):
  """Training dynamics blew up (non-finite or exploding loss).

  Attributes:
    step: first step at which the loss was non-finite or exploding (-1 if
      unknown).
  """

  def __init__(self, message, step=-1):
    super().__init__(message)
    self.step = int(step)
