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
function + kernel convolution with the loss). `theory_loss_curve` runs it
step by step (a jitted scan); `theory_loss_curve_log` integrates it in
geometrically growing chunks (O(d log r) work), which is what makes large-d
compute-optimal frontiers affordable (scaling/plrf_frontier.py).
`simulate_sgd` runs the SGD itself, vmapped over seeds.

The default learning rate is 0.5 B / ((B + 1) tr K), with tr K ~
v^{1 - 2 alpha} when 2 alpha < 1, so there gamma shrinks like d^{2 alpha - 1}
for v ~ d, as the phases below the high-dimensional line require. The phase
diagram and the asymptotic exponents are in scaling/plrf_phases.py.
"""
import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from scaling.plrf_phases import check_alpha_beta


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

  @property
  def initial_modes(self) -> np.ndarray:
    """c_j(0) = <u_j, theta*>^2: the recursion's state at theta = 0."""
    return (self.eigenvectors.T @ self.theta_star)**2

  def loss(self, theta) -> np.ndarray:
    """Population loss P(theta) for theta of shape (..., d)."""
    r = np.asarray(theta) @ self.W.T - self.b
    return 0.5 * np.sum(r**2 * self.D, axis=-1)


def make_problem(alpha: float, beta: float, d: int, v: int, seed: int = 0
                 ) -> PLRFProblem:
  """Draws W and sets up D, b, K's eigendecomposition, theta* and P*."""
  check_alpha_beta(alpha, beta)
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
    c0 = jnp.asarray(problem.initial_modes)
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


def _chunk_schedule(steps: int, growth: float) -> np.ndarray:
  """Chunk lengths 1, 1, ..., then about `growth` times the elapsed steps."""
  sizes, r = [], 0
  while r < steps:
    m = min(max(1, int(growth * r)), steps - r)
    sizes.append(m)
    r += m
  return np.asarray(sizes, np.float64)


def theory_loss_curve_log(problem: PLRFProblem, steps: int, *, batch: int = 1,
                          learning_rate: float = None, growth: float = 0.05,
                          sgd_noise: bool = True) -> tuple:
  """The loss recursion of `theory_loss_curve` on a geometric grid of steps.

  Paquette et al. 2024, Sec. 2 (Volterra equation), integrated in chunks of
  m ~ growth * r steps: within a chunk each mode's linear map is applied
  exactly (M^m and its geometric sums) and the loss P is taken linear in the
  step, so the chunk is one closed-form update with P at its end solved from
  a scalar linear equation. Cost O(d log(steps) / growth) instead of
  O(d steps); the error is second order in `growth` (tests compare it with
  the exact recursion). With `sgd_noise=False` the gradient noise is
  dropped (c_j(r+1) = (1 - gamma lambda_j)^2 c_j(r), the paper's forcing
  function alone: population gradient descent), which isolates the SGD-noise
  part of the loss as the difference of the two curves.

  Returns (record_steps, loss) at step 0 and at every chunk end.
  """
  if steps < 1 or not 0 < growth <= 0.5:
    raise ValueError("`steps` must be >= 1 and 0 < `growth` <= 0.5.")
  gamma = learning_rate or default_learning_rate(problem, batch)
  sizes = _chunk_schedule(int(steps), growth)
  with jax.enable_x64(True):
    lam = jnp.asarray(problem.eigenvalues)
    c0 = jnp.asarray(problem.initial_modes)
    gl = gamma * lam
    noise = 1 / batch if sgd_noise else 0.0
    one_minus = gl * (2 - gl * (1 + noise))       # 1 - M, exactly
    # The loss stays bounded iff the Volterra kernel's total mass is < 1.
    mass = float(jnp.sum(jnp.where(one_minus > 0, gamma**2 * lam**2 * noise
                                   / jnp.where(one_minus > 0, one_minus, 1),
                                   0.0)))
    if mass >= 1 or bool(jnp.any((one_minus <= 0) & (lam > 0))):
      raise ValueError(f"learning rate {gamma} makes the loss diverge "
                       f"(kernel mass {mass:.3f} >= 1).")
    out = _chunked_records(lam, c0, one_minus, gamma**2 * lam * noise,
                           jnp.asarray(problem.loss_star), jnp.asarray(sizes))
  rec = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
  return rec, np.asarray(out)


@jax.jit
def _chunked_records(lam, c0, one_minus, forcing, loss_star, sizes):
  """Runs the chunked recursion; returns P at step 0 and each chunk end."""
  a = -jnp.log1p(-one_minus)               # M = exp(-a); a = 0 for lambda = 0
  safe = jnp.where(one_minus > 0, one_minus, 1.0)

  def loss_of(c):
    return loss_star + 0.5 * jnp.sum(lam * c)

  def chunk(state, m):
    c, p0 = state
    mm = jnp.exp(-m * a)                   # M^m
    s = jnp.where(one_minus > 0, -jnp.expm1(-m * a) / safe, m)  # sum M^k
    ma = m * a
    # Mean of k under weights M^k, k < m (series where it cancels).
    mean_k = jnp.where(
        ma < 1e-3, (m - 1) / 2 - (m * m - 1) * a / 12,
        1 / jnp.expm1(jnp.maximum(a, 1e-300)) - m / jnp.expm1(
            jnp.maximum(ma, 1e-300)))
    w = ((m - 1) - mean_k) / m             # weight of the chunk-end loss
    base = mm * c + 2 * forcing * s * (1 - w) * p0
    gain = 2 * forcing * s * w
    p1 = loss_of(base) / (1 - 0.5 * jnp.sum(lam * gain))
    c = base + gain * p1
    return (c, p1), p1

  p0 = loss_of(c0)
  _, losses = jax.lax.scan(chunk, (c0, p0), sizes)
  return jnp.concatenate([p0[None], losses])


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
