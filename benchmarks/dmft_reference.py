"""The published two-layer DMFT algorithm, re-implemented as a speed baseline.

The reference algorithm (alternating Monte Carlo solver of Bordelon and
Pehlevan 2022, Algorithm 1, as released in notebooks) in its original form:

* initial fields sampled from the input kernel by eigendecomposition;
* a Python loop over time steps for the fields, batched over samples;
* dense (T P) x (T P) two-time kernels Phi and G recomputed every outer
  iteration, the NTK read off their equal-time blocks;
* predictions from the NTK dynamics f_{t+1} = f_t + lr/P K(t) (y - f_t);
* a fixed number of outer iterations (no tolerance), no damping.

It solves the same discrete-time gradient-descent problem as
`dmft.solve_two_layer` (mup, loss (1/2P) sum (f - y)^2) with numpy.
"""
import numpy as np


def relu(x):
  return np.maximum(x, 0.0)


def relu_derivative(x):
  return (x > 0).astype(x.dtype)


def solve_two_layer_reference(x, y, *, gamma0, lr, steps, n_samples,
                              n_outer=20, seed=0, phi=relu,
                              dphi=relu_derivative):
  """Returns (loss curve (steps+1,), predictions (steps+1, P), NTK(t))."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  p, d = x.shape
  rng = np.random.default_rng(seed)
  kx = x @ x.T / d
  evals, evecs = np.linalg.eigh(kx)
  sqrt_k = evecs * np.sqrt(np.clip(evals, 0, None))[None]
  h0 = rng.standard_normal((n_samples, p)) @ sqrt_k.T  # (n, P)
  a0 = rng.standard_normal(n_samples)
  # Lazy start: kernels constant in time.
  delta = np.tile(y, (steps + 1, 1))
  ntk = None
  for _ in range(n_outer):
    # Fields given the error signal (Python loop over time).
    h = h0.copy()
    a = a0.copy()
    phis = np.zeros((n_samples, steps + 1, p))
    gs = np.zeros((n_samples, steps + 1, p))
    for t in range(steps + 1):
      ph, dph = phi(h), dphi(h)
      phis[:, t] = ph
      gs[:, t] = a[:, None] * dph
      if t < steps:
        a_new = a + lr * gamma0 / p * ph @ delta[t]
        h = h + lr * gamma0 / p * (a[:, None] * (dph * delta[t][None])) @ kx
        a = a_new
    # Dense two-time kernels, (T P) x (T P).
    flat_phi = phis.reshape(n_samples, -1)
    flat_g = gs.reshape(n_samples, -1)
    big_phi = flat_phi.T @ flat_phi / n_samples
    big_g = flat_g.T @ flat_g / n_samples
    tp = steps + 1
    big_phi = big_phi.reshape(tp, p, tp, p)
    big_g = big_g.reshape(tp, p, tp, p)
    ntk = np.stack([big_phi[t, :, t] + kx * big_g[t, :, t]
                    for t in range(tp)])
    f = kernel_dynamics(ntk, y, lr, delta)
  loss = 0.5 * np.mean((f - y[None]) ** 2, axis=1)
  return loss, f, ntk


def kernel_dynamics(ntk, y, lr, delta):
  """Predictions f(t) from the kernel dynamics f(t+1) = f(t) + lr/P NTK(t) Delta(t); writes
  the new errors Delta(t) = y - f(t) into ``delta`` (T+1, P) in place."""
  tp, p = delta.shape
  f = np.zeros((tp, p))
  for t in range(tp - 1):
    delta[t] = y - f[t]
    f[t + 1] = f[t] + lr / p * ntk[t] @ delta[t]
  delta[tp - 1] = y - f[tp - 1]
  return f
