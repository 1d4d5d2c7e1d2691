"""The published deep DMFT algorithm, re-implemented as a speed baseline (a NumPy loop).

Bordelon and Pehlevan (2022), Eqs. (5)-(7) and Algorithm 1 (alternating Monte
Carlo solver) for a plain (non-residual) network of L hidden layers under muP,
in the discrete time of `dmft.solve_deep`, written the straightforward way, as
`benchmarks.dmft_reference` does for two layers:

* fields sampled from the two-time kernels by eigendecomposition, fresh
  samples every outer iteration: u^1 from the input kernel, u^{l+1} ~
  GP(0, Phi^l), r^l ~ GP(0, G^{l+1}) over (T P) x (T P), r^L the readout;
* a Python loop over time steps for the fields, batched over samples:
    chi^l(t) = u^l(t) + sum_{s<t} [A^{l-1}(t,s) + lr gamma0 / P Delta(s) Phi^{l-1}(s,t)] g^l(s)
    xi^l(t)  = r^l(t) + sum_{s<=t} B^l(t,s) phi(h^l(s))
               + lr gamma0 / P sum_{s<t} Delta(s) G^{l+1}(s,t) phi(h^l(s)),
    h^l = chi^l, g^l = phi'(h^l) xi^l (G^{L+1} = 1);
* dense (T P) x (T P) kernels Phi^l = <phi phi>, G^l = <g g> and the response
  functions by Stein's lemma, A^{l}(t,s) = <phi(h^l(t)) r^l^T> C_r^+ and
  B^l(t,s) = <g^{l+1}(t) u^{l+1}^T> C_u^+ (pseudo-inverses of the source
  covariances), recomputed every outer iteration;
* predictions from the NTK dynamics f_{t+1} = f_t + lr/P K(t) (y - f_t), the
  NTK read off the equal-time blocks; a fixed number of outer iterations, no
  damping, no tolerance, starting from the lazy solution (kernels at
  initialisation, the error of gradient descent with their NTK).

It solves the same problem as ``dmft.solve_deep(..., depth=L)`` with unit
weight multipliers (mup, loss (1/2P) sum (f - y)^2) on training points only.
"""
import numpy as np

from benchmarks.dmft_reference import kernel_dynamics, relu, relu_derivative

# Eigenvalues of a source covariance below RCOND times its largest are dropped in the
# pseudo-inverse of the Stein estimates (the two-time covariances are nearly singular).
RCOND = 1e-3


def _sample(cov, n, rng):
  """n samples (n, dim) of N(0, cov) by eigendecomposition (negative eigenvalues dropped)."""
  evals, evecs = np.linalg.eigh(cov)
  root = evecs * np.sqrt(np.clip(evals, 0, None))[None]
  return rng.standard_normal((n, cov.shape[0])) @ root.T


def solve_deep_reference(x, y, *, depth, gamma0, lr, steps, n_samples, n_outer=20, seed=0,
                         phi=relu, dphi=relu_derivative):
  """Returns (loss curve (steps+1,), predictions (steps+1, P), NTK(t) (steps+1, P, P))."""
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  p, d = x.shape
  n, big_l, tn = n_samples, depth, steps + 1
  rng = np.random.default_rng(seed)
  kx = x @ x.T / d
  strict = np.tril(np.ones((tn, tn)), -1)  # [t, s]: s < t
  weak = np.tril(np.ones((tn, tn)))  # s <= t
  # Lazy start: kernels of the network at initialisation (sampled), constant in time, ...
  h = _sample(kx, n, rng)
  phis, gs, dph = [], [], []
  for l in range(big_l):
    phis.append(np.kron(np.ones((tn, tn)), phi(h).T @ phi(h) / n))
    dph.append(dphi(h))
    if l + 1 < big_l:
      h = _sample(phis[-1][:p, :p], n, rng)
  g = np.ones((n, p))
  for l in reversed(range(big_l)):
    g = dph[l] * g
    gs.insert(0, np.kron(np.ones((tn, tn)), g.T @ g / n))
  resp_a = [np.zeros((tn, p, tn, p)) for _ in range(big_l - 1)]
  resp_b = [np.zeros((tn, p, tn, p)) for _ in range(big_l - 1)]
  # ... and the error of gradient descent with their NTK.
  ntk0 = kx * gs[0][:p, :p] + phis[-1][:p, :p]
  for l in range(big_l - 1):
    ntk0 = ntk0 + phis[l][:p, :p] * gs[l + 1][:p, :p]
  delta = np.zeros((tn, p))
  delta[0] = y
  for t in range(steps):
    delta[t + 1] = delta[t] - lr / p * ntk0 @ delta[t]
  f = ntk = None
  for _ in range(n_outer):
    drive = lr * gamma0 / p * delta  # [s, m]
    # Sources: u^1 constant in time, u^{l+1} from Phi^l, r^l from G^{l+1}, r^L the readout.
    u = [np.broadcast_to(_sample(kx, n, rng)[:, None], (n, tn, p))]
    u += [_sample(phis[l], n, rng).reshape(n, tn, p) for l in range(big_l - 1)]
    r = [_sample(gs[l + 1], n, rng).reshape(n, tn, p) for l in range(big_l - 1)]
    r.append(np.broadcast_to(rng.standard_normal(n)[:, None, None], (n, tn, p)))
    # History couplings [t, v, s, m].
    m_h = [kx[None, :, None, :] * drive[None, None] * strict[:, None, :, None]]
    for l in range(1, big_l):
      phi_st = phis[l - 1].reshape(tn, p, tn, p).transpose(2, 3, 0, 1)  # Phi(s, t)[t, v, s, m]
      m_h.append(resp_a[l - 1] + phi_st * drive[None, None] * strict[:, None, :, None])
    m_z = []
    for l in range(big_l - 1):
      g_st = gs[l + 1].reshape(tn, p, tn, p).transpose(2, 3, 0, 1)
      m_z.append(resp_b[l] * weak[:, None, :, None] +
                 g_st * drive[None, None] * strict[:, None, :, None])
    m_z.append(np.ones((tn, p, tn, p)) * drive[None, None] * strict[:, None, :, None])
    # Fields (Python loop over time, batched over samples).
    hs = np.zeros((big_l, n, tn, p))
    phs = np.zeros((big_l, n, tn, p))
    gfs = np.zeros((big_l, n, tn, p))
    xis = np.zeros((big_l, n, tn, p))
    for t in range(tn):
      for l in range(big_l):
        chi = u[l][:, t] + np.einsum("vsm,nsm->nv", m_h[l][t], gfs[l])
        hs[l, :, t] = chi
        phs[l, :, t] = phi(chi)
      for l in reversed(range(big_l)):
        xi = r[l][:, t] + np.einsum("vsm,nsm->nv", m_z[l][t], phs[l])
        xis[l, :, t] = xi
        gfs[l, :, t] = dphi(hs[l, :, t]) * xi
    # Dense two-time kernels, (T P) x (T P).
    flat_phi = phs.reshape(big_l, n, tn * p)
    flat_g = gfs.reshape(big_l, n, tn * p)
    phis = [fp.T @ fp / n for fp in flat_phi]
    gs = [fg.T @ fg / n for fg in flat_g]
    # Responses by Stein's lemma (pseudo-inverse of each source covariance).
    resp_a, resp_b = [], []
    for l in range(big_l - 1):
      r_flat = r[l].reshape(n, tn * p)
      cov_r = r_flat.T @ r_flat / n
      a = (flat_phi[l].T @ r_flat / n) @ np.linalg.pinv(cov_r, rcond=RCOND, hermitian=True)
      resp_a.append(a.reshape(tn, p, tn, p) * strict[:, None, :, None])
      u_flat = u[l + 1].reshape(n, tn * p)
      cov_u = u_flat.T @ u_flat / n
      b = (flat_g[l + 1].T @ u_flat / n) @ np.linalg.pinv(cov_u, rcond=RCOND, hermitian=True)
      resp_b.append(b.reshape(tn, p, tn, p) * weak[:, None, :, None])
    # NTK(t) from the equal-time blocks; predictions from the kernel dynamics.
    diag_phi = [np.stack([k.reshape(tn, p, tn, p)[t, :, t] for t in range(tn)]) for k in phis]
    diag_g = [np.stack([k.reshape(tn, p, tn, p)[t, :, t] for t in range(tn)]) for k in gs]
    ntk = kx[None] * diag_g[0] + diag_phi[-1]
    for l in range(big_l - 1):
      ntk = ntk + diag_phi[l] * diag_g[l + 1]
    f = kernel_dynamics(ntk, y, lr, delta)
  loss = 0.5 * np.mean((f - y[None]) ** 2, axis=1)
  return loss, f, ntk
