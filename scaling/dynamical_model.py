"""The dynamical random-feature model of Bordelon, Atanasov and Pehlevan 2024.

"A Dynamical Model of Neural Scaling Laws" (ICML 2024): features psi(x) with
a power-law spectrum lambda_k = k^{-b} (k = 1..M), a target y = psi . w* with
power lambda_k (w*_k)^2 = k^{-a}, a model f = (A psi) . w / sqrt(N) with a
random projection A (N x M, i.i.d. N(0, 1)) and gradient flow on P samples
from w = 0 for time t. Features are Gaussian (the paper's Gaussian-equivalent
setting).

Theory: the loss is limited by whichever of time, model size and data is
scarcest (the paper's bottleneck scalings, Sec. 4):

  L(t, N, P) ~ sum_{k <= min(N, P)} k^{-a} exp(-2 k^{-b} t)
               + sum_{k > min(N, P)} k^{-a},

so L ~ t^{-(a-1)/b} when time limits, N^{-(a-1)} when the model size does and
P^{-(a-1)} when data does. At compute C = N t (data unlimited) the optimum
balances t^{-(a-1)/b} with N^{-(a-1)}: t ~ N^b, N* ~ C^{1/(1+b)},
t* ~ C^{b/(1+b)} and L* ~ C^{-(a-1)/(1+b)} (Bordelon et al. 2024, Sec. 5).

Each bottleneck also has an exact limit, which the bottleneck form matches
only up to an O(1) factor (about 2 in the model-limited regime at a = b = 1.5):

  time-limited  (N, P -> inf):  sum_k k^{-a} exp(-2 lambda_k t);
  model-limited (t, P -> inf):  sum_k k^{-a} kappa / (lambda_k + kappa),
                                sum_k lambda_k / (lambda_k + kappa) = N,
      the deterministic equivalent of the projection onto A's row space
      (Bach 2024, "High-dimensional analysis of double descent for linear
      regression with random projections"), times (P - 1)/(P - N - 1) for
      P > N + 1 samples (least squares on N Gaussian features with an
      independent Gaussian residual, exact in expectation);
  data-limited  (t, N -> inf):  ridgeless kernel regression on P samples,
      `scaling.learning_curve` (Bordelon, Canatar and Pehlevan 2020).

Simulation: exact gradient flow for each draw of (A, data) through the
eigendecomposition of the empirical feature covariance (N x N, or the P x P
Gram matrix when P < N), vmapped over draws.
"""
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from scaling.learning_curve import learning_curve


def _check(a, b):
  if not (np.isfinite(a) and np.isfinite(b) and a > 1 and b > 1):
    raise ValueError(f"need a > 1 and b > 1 (finite loss and trace), got "
                     f"a={a}, b={b}.")


def theory_loss(t, N, P, *, a: float, b: float, M: int = 10**6):
  """Bottleneck approximation of L(t, N, P); Bordelon, Atanasov and Pehlevan 2024, Sec. 4.

  Arguments broadcast; use N = P = M for an unlimited model and data.
  """
  _check(a, b)
  k = np.arange(1, M + 1, dtype=np.float64)
  t, N, P = np.broadcast_arrays(np.asarray(t, np.float64),
                                np.asarray(N, np.float64),
                                np.asarray(P, np.float64))
  out = np.empty(t.shape)
  power = k**(-a)
  tail = np.concatenate([np.cumsum(power[::-1])[::-1], [0.0]])
  for idx in np.ndindex(t.shape):
    m = int(min(N[idx], P[idx], M))
    learned = np.sum(power[:m] * np.exp(-2 * k[:m]**(-b) * t[idx]))
    out[idx] = learned + tail[m]
  return out


def time_limited_loss(t, *, a: float, b: float, M: int = 10**6):
  """L(t) for unlimited N and P (gradient flow on the population); Bordelon et al. 2024, Sec. 4."""
  return theory_loss(t, M, M, a=a, b=b, M=M)


def projection_kappa(N: float, *, b: float, M: int) -> float:
  """kappa with sum_k lambda_k / (lambda_k + kappa) = N (lambda_k = k^-b, k <= M)."""
  if not 0 < N < M:
    raise ValueError(f"need 0 < N < M, got N={N}, M={M}.")
  lam = np.arange(1, M + 1, dtype=np.float64)**(-b)
  root = optimize.brentq(
      lambda lk: np.sum(lam / (lam + np.exp(lk))) - N, -200.0, 50.0,
      xtol=1e-13, rtol=1e-13)
  return float(np.exp(root))


def model_limited_loss(N: int, *, a: float, b: float, M: int,
                       P: float = np.inf) -> float:
  """L(t -> inf) at N features; Bach 2024 (projection deterministic equivalent).

  With finite P > N + 1 samples the least-squares factor (P - 1)/(P - N - 1)
  multiplies the infinite-data value.
  """
  _check(a, b)
  if np.isfinite(P) and P <= N + 1:
    raise ValueError(f"the model-limited form needs P > N + 1, got N={N}, P={P}.")
  k = np.arange(1, M + 1, dtype=np.float64)
  kappa = projection_kappa(N, b=b, M=M)
  loss = float(np.sum(k**(-a) * kappa / (k**(-b) + kappa)))
  return loss if not np.isfinite(P) else loss * (P - 1) / (P - N - 1)


def data_limited_loss(P, *, a: float, b: float, M: int):
  """L(t -> inf) for N -> inf on P samples: ridgeless kernel regression; Bordelon, Canatar and Pehlevan 2020."""
  _check(a, b)
  k = np.arange(1, M + 1, dtype=np.float64)
  with jax.enable_x64(True):
    out = learning_curve(k**(-b), np.sqrt(k**(-a)), P)
  return np.asarray(out.test_mse)


def bottleneck_exponents(a: float, b: float) -> dict:
  """Exponents of L in t, N, P and of the compute-optimal allocation; Bordelon et al. 2024, Secs. 4-5."""
  _check(a, b)
  return {"time": (a - 1) / b, "model": a - 1, "data": a - 1,
          "compute_loss": (a - 1) / (1 + b), "compute_model": 1 / (1 + b),
          "compute_time": b / (1 + b)}


def compute_optimal(C, *, a: float, b: float) -> dict:
  """N*(C), t*(C) = C / N* and L*(C) from the theory, by search over N; Bordelon et al. 2024, Sec. 5."""
  _check(a, b)
  C = np.atleast_1d(np.asarray(C, np.float64))
  ns = np.unique(np.geomspace(1, max(4, C.max()**0.9), 200).astype(int))
  n_star, l_star = [], []
  for c in C:
    losses = theory_loss(c / ns, ns, 10**9, a=a, b=b, M=int(ns.max()) * 4)
    i = int(np.argmin(losses))
    n_star.append(ns[i])
    l_star.append(losses[i])
  n_star = np.asarray(n_star, np.float64)
  return {"C": C, "N_opt": n_star, "t_opt": C / n_star,
          "loss_opt": np.asarray(l_star)}


def simulate(key, *, a: float, b: float, N: int, P: int, M: int,
             times: Sequence[float], num_draws: int = 8):
  """Test loss of gradient flow at `times`, averaged over draws (vmapped).

  Returns (mean (len(times),), per-draw losses (num_draws, len(times))).
  """
  _check(a, b)
  if not (0 < N and 0 < P and 0 < M):
    raise ValueError(f"need N, P, M > 0, got N={N}, P={P}, M={M}.")
  k = jnp.arange(1, M + 1, dtype=jnp.result_type(float))
  lam = k**(-b)
  w_star = jnp.sqrt(k**(-a) / lam)
  times = jnp.asarray(times, lam.dtype)

  def one(key):
    k1, k2 = jax.random.split(key)
    proj = jax.random.normal(k1, (N, M), lam.dtype)
    psi = jax.random.normal(k2, (P, M), lam.dtype) * jnp.sqrt(lam)
    y = psi @ w_star
    z = psi @ proj.T / jnp.sqrt(N)           # (P, N) features
    if P >= N:
      s, v = jnp.linalg.eigh(z.T @ z / P)
      s = jnp.maximum(s, 0.0)
    else:                                    # same flow through the P x P Gram
      s, u = jnp.linalg.eigh(z @ z.T / P)
      s = jnp.maximum(s, 0.0)
      norm = jnp.where(s > 0, jnp.sqrt(P * jnp.where(s > 0, s, 1.0)), 1.0)
      v = z.T @ u / norm                     # (N, P) right singular vectors
    proj_y = v.T @ (z.T @ y / P)
    eff = proj.T @ v / jnp.sqrt(N)           # (M, min(N, P)) map of eigen-coordinates

    def loss_at(t):
      gain = jnp.where(s > 1e-12 * s.max(), -jnp.expm1(-s * t) / s, 0.0)
      w_eff = eff @ (gain * proj_y)
      diff = w_eff - w_star
      return jnp.sum(lam * diff * diff)

    return jax.vmap(loss_at)(times)

  losses = jax.jit(jax.vmap(one))(jax.random.split(key, num_draws))
  return np.asarray(losses.mean(0)), np.asarray(losses)
