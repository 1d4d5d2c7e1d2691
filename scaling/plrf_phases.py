"""Phase diagram and compute-optimal exponents of power-law random features.

Paquette, Paquette, Xiao and Pennington 2024 ("4+3 Phases of Compute-Optimal
Neural Scaling Laws"), Sec. 3, Fig. 2 and Table 2. With x = gamma r the
SGD "time", the loss of one-pass SGD (batch 1, compute f = r d) is, up to
constants, the sum of

  F_pp ~ x^{-p},  p = (2 alpha + 2 beta - 1)/(2 alpha)   (population GD)
  F_0  ~ d^{-2 alpha + max(0, 1 - 2 beta)}               (capacity)
  F_ac ~ d^{-1} x^{-1 + 1/(2 alpha)}    if 2 alpha > 1, 2 beta > 1 (embedding)
  noise ~ gamma K_pp ~ gamma x^{-q}, q = 2 - 1/(2 alpha)  if alpha > 1/4 (SGD)

while x < d^{2 alpha}; afterwards the loss sits at F_0. Above the
high-dimensional line (2 alpha > 1) gamma is O(1). Below it (2 alpha < 1) the
data dimension v must grow like d, tr(K) ~ d^{1 - 2 alpha} and the learning
rate must shrink, gamma ~ d^{2 alpha - 1}; then F_ac is flat at the F_0 level
d^{-2 alpha}, the SGD noise is gamma x^{-q} = d^{2 alpha - 1} x^{-q}, and for
alpha < 1/4 (where sum_j lambda_j^2 is carried by j ~ d) it is flat at
d^{-2 alpha}. Minimising the sum at fixed f over d (x = f d^{2 alpha - 2}):

  Ia  (2a > 1, 2b < 1):        F_pp vs F_0,  d* ~ f^{1/(2a + 1)}
  II  (2a > 1, 2b > 1, b < a): F_pp vs F_ac, d* ~ f^{b/(a + b)}
  III (2a > 1, 2b > 1, b > a): noise vs F_ac, d* ~ f^{1/2}
  Ib  (2a < 1, 2b < 1):        F_pp vs F_0,  d* ~ f^{1/2}
  Ic  (a < 1/4, 2b > 1):       F_pp vs F_0 (noise at the same level),
                               d* ~ f^{(2a + 2b - 1)/(2 (3a + 2b - 2ab - 1))}
  IVa (a_c < a < 1/2, 2b > 1): noise vs F_0 at the knee x ~ d^{2a},
                               d* ~ f^{1/2}, loss ~ f^{-a}
  IVb (1/4 < a < a_c, 2b > 1): F_pp vs noise,
                               d* ~ f^{(b - a)/(2b - a - 2ab)}

with a_c = 1 - 1/sqrt(2), where the noise term at x = f d^{2a - 2} stops
growing with d (its d exponent is (4a - 1 - 2a^2)/a). The loss exponents
follow by substitution. The exponents are continuous across every boundary
except d*'s across a = a_c (there the loss is flat in d over
f^{1/2} < d < f^{(b - a)/(2b - a - 2ab)}); the IVa/IVb boundary and the
exponents of phases Ic, IVa, IVb are this module's derivation from the terms
above, checked against the exact loss recursion in tests/scaling/test_plrf.py.
"""
import math

import numpy as np

ALPHA_IV = 1 - 1 / math.sqrt(2)   # IVa / IVb boundary


def check_alpha_beta(alpha, beta):
  """Raises ValueError unless the model's loss is finite."""
  if not (np.isfinite(alpha) and np.isfinite(beta)):
    raise ValueError("`alpha` and `beta` must be finite.")
  if alpha <= 0:
    raise ValueError(f"`alpha` must be > 0, got {alpha}.")
  if 2 * alpha + 2 * beta <= 1:
    raise ValueError("the loss is infinite unless 2 alpha + 2 beta > 1; got "
                     f"alpha={alpha}, beta={beta}.")


def plrf_phase(alpha: float, beta: float) -> str:
  """Phase of (alpha, beta); Paquette et al. 2024, Fig. 2 (phase diagram).

  Boundaries (2 alpha = 1, 2 beta = 1, beta = alpha, alpha = 1/4,
  alpha = 1 - 1/sqrt(2)) belong to the phase on their larger-parameter side.
  """
  check_alpha_beta(alpha, beta)
  if 2 * alpha >= 1:
    if 2 * beta < 1:
      return "Ia"
    return "II" if beta < alpha else "III"
  if 2 * beta < 1:
    return "Ib"
  if alpha < 0.25:
    return "Ic"
  return "IVa" if alpha >= ALPHA_IV else "IVb"


def plrf_compute_optimal(alpha: float, beta: float) -> dict:
  """Phase and compute-optimal exponents of PLRF; Paquette et al. 2024, Table 2.

  Ia, II, III and Ib follow the paper's balances; the Ic, IVa and IVb
  exponents and the IVa/IVb boundary are derived in this module's docstring
  from the same loss terms (tests check continuity across all boundaries).

  Returns:
    {"phase": str, "d_exponent": xi, "loss_exponent": eta} with
    d* ~ f^xi and loss(f, d*) ~ f^-eta for compute f (batch 1, learning rate
    ~ 1/tr(K), data dimension v >= d, v ~ d when 2 alpha < 1).
  """
  a, b = float(alpha), float(beta)
  phase = plrf_phase(a, b)
  if phase == "Ia":
    xi = 1 / (2 * a + 1)
    eta = (2 * a + 2 * b - 1) / (2 * a + 1)
  elif phase == "II":
    xi = b / (a + b)
    eta = (2 * a + 2 * b - 1) / (2 * (a + b))
  elif phase == "III":
    xi, eta = 0.5, 1 - 1 / (4 * a)
  elif phase == "Ib":
    xi, eta = 0.5, (2 * a + 2 * b - 1) / 2
  elif phase == "Ic":
    xi = (2 * a + 2 * b - 1) / (2 * (3 * a + 2 * b - 2 * a * b - 1))
    eta = 2 * a * xi
  elif phase == "IVa":
    xi, eta = 0.5, a
  else:
    xi = (b - a) / (2 * b - a - 2 * a * b)
    eta = (2 * a + 2 * b - 1) * (1 - 2 * a) / (2 * (2 * b - a - 2 * a * b))
  return {"phase": phase, "d_exponent": float(xi), "loss_exponent": float(eta)}
