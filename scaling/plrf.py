"""Power-law random features (PLRF): theory of one-pass SGD and its phases.

The model of Paquette, Paquette, Xiao and Pennington 2024 ("4+3 Phases of
Compute-Optimal Neural Scaling Laws"): data x ~ N(0, D) in dimension v with
D = diag(j^{-2 alpha}), target <x, b> with b_j = j^{-beta}, random features
W (v x d) with i.i.d. N(0, 1/d) entries, predictor <W^T x, theta> and loss

  P(theta) = E[(<W^T x, theta> - <x, b>)^2] / 2,

trained by one-pass SGD (batch B, learning rate gamma) from theta = 0; compute
after r steps is f = r B d.

Theory. With K = W^T D W = U diag(lambda) U^T, theta* the minimiser and
P* = P(theta*), the expected loss given W obeys, for Gaussian data, exactly

  c_j(r+1) = [(1 - gamma lambda_j)^2 + gamma^2 lambda_j^2 / B] c_j(r)
             + (gamma^2 lambda_j / B) * 2 P(r),
  P(r) = P* + sum_j lambda_j c_j(r) / 2,    c_j(0) = <u_j, theta*>^2,

the discrete form of the paper's Volterra equation (Sec. 2: loss = forcing
function + kernel convolution with the loss). It is solved by a jitted scan.

Phases and compute-optimal exponents (for 2 alpha > 1) follow from the
large-d asymptotics of the forcing and kernel functions in the paper's
Table 1: F_pp(r) ~ (gamma r)^{-(1 + beta/alpha) + 1/(2 alpha)} (gradient
descent on the population), F_ac(r) ~ d^{-1} (gamma r)^{-1 + 1/(2 alpha)}
(feature embedding, present when 2 beta > 1), F_0 ~ d^{-2 alpha +
max(0, 1 - 2 beta)} (model capacity) and the SGD-noise term
K_pp(r) ~ (gamma r)^{-2 + 1/(2 alpha)}. Minimising their sum at fixed f = r d
gives (Paquette et al. 2024, Sec. 3, Table 2):

  Phase Ia  (2 beta < 1):            d* ~ f^{1/(2 alpha + 1)},
            loss ~ f^{-(2 alpha + 2 beta - 1)/(2 alpha + 1)}   (F_pp vs F_0)
  Phase II  (2 beta > 1, beta < alpha): d* ~ f^{beta/(alpha + beta)},
            loss ~ f^{-(2 alpha + 2 beta - 1)/(2 (alpha + beta))} (F_pp vs F_ac)
  Phase III (beta > alpha, 2 beta > 1): d* ~ f^{1/2},
            loss ~ f^{-(1 - 1/(4 alpha))}                      (K_pp vs F_ac)

The phases with 2 alpha < 1 (Ib, Ic, IVa, IVb), where the learning rate must
shrink with d, are not implemented here.
"""
import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class PLRFProblem:
  """One draw of the PLRF model (host arrays, float64)."""
  alpha: float
  beta: float
  W: np.ndarray        # (v, d)
  D: np.ndarray        # (v,) data variances j^{-2 alpha}
  b: np.ndarray        # (v,) target j^{-beta}
  eigenvalues: np.ndarray  # (d,) of K = W^T D W
  eigenvectors: np.ndarray  # (d, d)
  theta_star: np.ndarray    # (d,)
  loss_star: float          # P(theta*)

  @property
  def d(self) -> int:
    return self.W.shape[1]

  def loss(self, theta) -> np.ndarray:
    """Population loss P(theta) for theta of shape (..., d)."""
    r = np.asarray(theta) @ self.W.T - self.b
    return 0.5 * np.sum(r**2 * self.D, axis=-1)


def _check_alpha_beta(alpha, beta):
  if not (np.isfinite(alpha) and np.isfinite(beta)):
    raise ValueError("`alpha` and `beta` must be finite.")
  if alpha <= 0.25:
    raise ValueError(f"`alpha` must be > 1/4, got {alpha}.")
  if 2 * alpha + 2 * beta <= 1:
    raise ValueError("the loss is infinite unless 2 alpha + 2 beta > 1; got "
                     f"alpha={alpha}, beta={beta}.")


def make_problem(alpha: float, beta: float, d: int, v: int, seed: int = 0
                 ) -> PLRFProblem:
  """Draws W and sets up D, b, K's eigendecomposition, theta* and P*."""
  _check_alpha_beta(alpha, beta)
  if not (isinstance(d, (int, np.integer)) and d >= 1):
    raise ValueError(f"`d` must be a positive int, got {d!r}.")
  if not (isinstance(v, (int, np.integer)) and v >= d):
    raise ValueError(f"`v` must be an int >= d, got {v!r}.")
  j = np.arange(1, v + 1, dtype=np.float64)
  dvar = j**(-2 * alpha)
  b = j**(-beta)
  rng = np.random.default_rng(seed)
  w = rng.standard_normal((v, d)) / np.sqrt(d)
  return _finish(alpha, beta, w, dvar, b)


def _finish(alpha, beta, w, dvar, b):
  k = w.T @ (dvar[:, None] * w)
  lam, u = np.linalg.eigh(k)
  lam = np.maximum(lam, 0.0)
  rhs = w.T @ (dvar * b)
  coef = u.T @ rhs
  keep = lam > lam.max() * 1e-13
  theta_star = u[:, keep] @ (coef[keep] / lam[keep])
  r = w @ theta_star - b
  loss_star = 0.5 * float(np.sum(r**2 * dvar))
  return PLRFProblem(alpha, beta, w, dvar, b, lam, u, theta_star, loss_star)


def default_learning_rate(problem: PLRFProblem, batch: int = 1) -> float:
  """gamma = 0.5 B / tr(K): inside the stability region of the recursion."""
  return 0.5 * batch / float(np.sum(problem.eigenvalues)) / (1 + 1 / batch)


def theory_loss_curve(problem: PLRFProblem, steps: int, *, batch: int = 1,
                      learning_rate: float = None, num_records: int = 100
                      ) -> tuple:
  """Expected loss of one-pass SGD given W; Paquette et al. 2024, Sec. 2 (Volterra equation, discrete form).

  Returns (record_steps, loss) with loss at steps 0 and every
  steps // num_records after.
  """
  if steps < num_records or num_records < 1:
    raise ValueError("`steps` must be >= `num_records` >= 1.")
  gamma = learning_rate or default_learning_rate(problem, batch)
  every = steps // num_records
  with jax.enable_x64(True):
    lam = jnp.asarray(problem.eigenvalues)
    c0 = jnp.asarray((problem.eigenvectors.T @ problem.theta_star)**2)
    mult = (1 - gamma * lam)**2 + gamma**2 * lam**2 / batch
    forcing = gamma**2 * lam / batch
    out = _scan_records(lam, c0, mult, forcing,
                        jnp.asarray(problem.loss_star), every=every,
                        num_records=num_records)
  rec = np.arange(num_records + 1) * every
  return rec, np.asarray(out)


@functools.partial(jax.jit, static_argnames=("every", "num_records"))
def _scan_records(lam, c0, mult, forcing, loss_star, every, num_records):
  """Runs the loss recursion; returns P at steps 0, every, 2 every, ..."""
  def loss_of(c):
    return loss_star + 0.5 * jnp.sum(lam * c)

  def step(c, _):
    return mult * c + forcing * 2 * loss_of(c), None

  def chunk(c, _):
    c, _ = jax.lax.scan(step, c, None, length=every)
    return c, loss_of(c)

  _, losses = jax.lax.scan(chunk, c0, None, length=num_records)
  return jnp.concatenate([loss_of(c0)[None], losses])


def simulate_sgd(problem: PLRFProblem, steps: int, *, batch: int = 1,
                 learning_rate: float = None, num_records: int = 100,
                 seeds: Sequence[int] = (0, 1, 2, 3)) -> tuple:
  """One-pass SGD on fresh Gaussian samples, vmapped over seeds.

  Returns (record_steps, losses (seeds, records)); the loss at each record is
  the exact population loss P(theta) of the iterate.
  """
  gamma = learning_rate or default_learning_rate(problem, batch)
  every = steps // num_records
  with jax.enable_x64(True):
    w = jnp.asarray(problem.W)
    sd = jnp.sqrt(jnp.asarray(problem.D))
    b = jnp.asarray(problem.b)
    dvar = jnp.asarray(problem.D)

    def pop_loss(theta):
      r = w @ theta - b
      return 0.5 * jnp.sum(r * r * dvar)

    def run(key):
      def step(carry, _):
        theta, key = carry
        key, sub = jax.random.split(key)
        x = sd * jax.random.normal(sub, (batch, sd.shape[0]), sd.dtype)
        z = x @ w
        resid = z @ theta - x @ b
        theta = theta - gamma * z.T @ resid / batch
        return (theta, key), None

      def chunk(carry, _):
        carry, _ = jax.lax.scan(step, carry, None, length=every)
        return carry, pop_loss(carry[0])

      theta0 = jnp.zeros((w.shape[1],), w.dtype)
      _, losses = jax.lax.scan(chunk, (theta0, key), None, length=num_records)
      return jnp.concatenate([pop_loss(theta0)[None], losses])

    keys = jnp.stack([jax.random.key_data(jax.random.key(s)) for s in seeds])
    losses = jax.jit(jax.vmap(lambda k: run(jax.random.wrap_key_data(k))))(
        keys)
  return np.arange(num_records + 1) * every, np.asarray(losses)


def plrf_phase(alpha: float, beta: float) -> str:
  """Phase of (alpha, beta); Paquette et al. 2024, Fig. 2 (phase diagram), for 2 alpha > 1."""
  _check_alpha_beta(alpha, beta)
  if 2 * alpha <= 1:
    raise NotImplementedError(
        "phases with 2 alpha <= 1 (Ib, Ic, IVa, IVb) are not implemented; got "
        f"alpha={alpha}.")
  if 2 * beta < 1:
    return "Ia"
  if beta < alpha:
    return "II"
  return "III"


def plrf_compute_optimal(alpha: float, beta: float) -> dict:
  """Phase and compute-optimal exponents of PLRF; Paquette et al. 2024, Table 2.

  Returns:
    {"phase": str, "d_exponent": xi, "loss_exponent": eta} with
    d* ~ f^xi and loss(f, d*) ~ f^-eta for compute f.
  """
  phase = plrf_phase(alpha, beta)
  if phase == "Ia":
    xi = 1 / (2 * alpha + 1)
    eta = (2 * alpha + 2 * beta - 1) / (2 * alpha + 1)
  elif phase == "II":
    xi = beta / (alpha + beta)
    eta = (2 * alpha + 2 * beta - 1) / (2 * (alpha + beta))
  else:
    xi = 0.5
    eta = 1 - 1 / (4 * alpha)
  return {"phase": phase, "d_exponent": float(xi), "loss_exponent": float(eta)}


def theory_compute_frontier(alpha: float, beta: float, ds: Sequence[int], *,
                            v: int, max_flops: float, num_records: int = 200,
                            seed: int = 0) -> dict:
  """Compute-optimal d*(f) and loss*(f) read off theory curves at several d.

  For each d the theory loss curve is computed up to f = max_flops (f = r d,
  B = 1); on a log grid of f, d* is the d of lowest loss. Returns the grid,
  d*, loss* and least-squares exponents over the f range where d* is
  interior to `ds`.
  """
  curves = []
  for d in ds:
    prob = make_problem(alpha, beta, int(d), v, seed)
    steps = int(max_flops // d)
    rec, loss = theory_loss_curve(prob, steps, num_records=num_records)
    curves.append((d, rec[1:] * d, loss[1:]))
  f_lo = max(c[1][0] for c in curves)
  fs = np.geomspace(f_lo, max_flops * 0.99, 40)
  table = np.stack([np.interp(np.log(fs), np.log(c[1]), c[2]) for c in curves])
  best = np.argmin(table, axis=0)
  d_star = np.asarray(ds, np.float64)[best]
  loss_star = table[best, np.arange(len(fs))]
  interior = (best > 0) & (best < len(ds) - 1)
  out = dict(flops=fs, d_star=d_star, loss_star=loss_star, interior=interior)
  if interior.sum() >= 3:
    out["d_exponent"] = float(np.polyfit(np.log(fs[interior]),
                                         np.log(d_star[interior]), 1)[0])
    out["loss_exponent"] = float(-np.polyfit(np.log(fs[interior]),
                                             np.log(loss_star[interior]), 1)[0])
  return out
