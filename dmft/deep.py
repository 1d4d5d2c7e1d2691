"""DMFT of deep (and residual) networks trained by full-batch gradient descent.

Network (mean-field / muP, all weights N(0, 1), L hidden layers of width N):
  h^1 = W_in W^0 x / sqrt(D)
  h^{l+1} = W_std W^l phi(h^l) / sqrt(N)                     (plain)
  h^{l+1} = h^l + beta W_std W^l phi(h^l) / sqrt(N)            (residual)
  f = readout_std w . phi(h^L) / (gamma0 N),
every layer trained with SGD rate lr * gamma0^2 * N on the loss
(1/(2P)) sum_mu (f_mu - y_mu)^2.

At infinite width each neuron carries fields h^l_mu(t) and gradient fields
g^l_mu(t) = gamma0 N df/dh^l driven by Gaussian sources u^l ~ GP(0, s_l^2
Phi^{l-1}), r^l ~ GP(0, s_{l+1}^2 G^{l+1}) (s_l the effective std of the matrix
into layer l), the error signal Delta_mu(t) = y_mu - f_mu(t), and the response
functions A^l(t, s) = <d phi(h^l(t)) / d r^l(s)>, B^l(t, s) = <d g^{l+1}(t) /
d u^{l+1}(s)>. In discrete time:
  chi^l(t) = u^l(t) + s_l^2 sum_{s<t} [A^{l-1}(t,s) + lr gamma0 / P
             Delta(s) Phi^{l-1}(s,t)] g^l(s)
  xi^l(t)  = r^l(t) + s_{l+1}^2 sum_{s<=t} B^l(t,s) phi(h^l(s))
             + s_{l+1}^2 lr gamma0 / P sum_{s<t} Delta(s) G^{l+1}(s,t) phi(h^l(s))
  plain: h^l = chi^l, g^l = phi'(h^l) xi^l;
  residual: h^l = h^{l-1} + chi^l, g^l = g^{l+1} + phi'(h^l) xi^l.
These two lines are all that differs between the architectures: a `Composition`
(`PLAIN`, `RESIDUAL`) holds them as data, and the t = 0 kernels, the sampled fields
and the exact linear equations all read it (another architecture is another
`Composition`, not another solver).
The order parameters {Phi^l, G^l, A^l, B^l, Delta} are found by damped
fixed-point iteration to a tolerance; expectations are Monte Carlo averages over
quenched samples (the same noise every iteration, so the iteration map is
deterministic), responses come from Stein's lemma with a baseline, and
predictions follow from the fields with the direct effect of the error taken
through the instantaneous NTK.

For linear networks the same equations are solved without sampling: every
field is a linear map of the Gaussian sources, expectations are exact
quadratic forms and responses are the coefficients on the sources (the
algebraic matrix equations of deep linear DMFT).
"""
import contextlib
import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from dmft import activations as act_lib
from dmft import core
from dmft import fast_compile
from dmft import gaussian
from dmft import lazy
from dmft import network
from dmft import results
from kernels import validation as val


# Default stopping tolerance of sampled solves, relative to n_samples^-1/2.
MC_TOL_FACTOR = 0.2
# Monte Carlo floor of sampled solves, relative to n_samples^-1/2: below it, the
# fixed-point map over the quenched samples may wander instead of contracting
# (measured floors 0.4-1.2 n_samples^-1/2 with ReLU), and a solve whose residual
# stays there without improving has converged as far as its samples allow.
MC_FLOOR_FACTOR = 2.0
# Pathwise responses: directions are grouped by the time of their shift into windows
# (a window starting at time a runs over [a, T] only; the work of a window grows as its
# directions times its length squared: with T = 12 and 3 windows, 0.52 of one window's
# work). Each window is its own program, so their number trades run time against
# compilation: one per RESPONSE_WINDOW_STEPS times, within RESPONSE_WINDOWS. Measured:
# T = 12 (the benchmark's deep solve), 4 windows ran no faster than 3 and compiled 0.8 s
# longer (3.4 s against 2.6 s); T = 40 (L = 3, P = 12, n_response = 256), 8 windows ran
# an iteration in 16.6 s against 21.3 s with 3, and compiled 6 s longer ...
RESPONSE_WINDOW_STEPS = 5
RESPONSE_WINDOWS = (3, 8)
# ... and blocked so that one block's tangent histories hold at most this many numbers.
RESPONSE_BLOCK_ELEMENTS = 2 ** 25


@dataclasses.dataclass(frozen=True)
class Composition:
  """How a hidden layer's fields compose with its neighbours': the one part of the deep
  field equations that differs between architectures (data, not a flag).

  ``forward(prev, own)``: the preactivation h^l from h^{l-1} (None at the first layer)
  and the layer's own field chi^l; ``backward(nxt, own)``: the gradient field g^l from
  g^{l+1} (None at the last layer) and phi'(h^l) xi^l. Both rules are linear, so they
  compose the t = 0 kernels (covariances of those fields) in the same way.
  ``hidden_std(w_std, beta)``: the effective std of a hidden matrix.
  Plain: Bordelon and Pehlevan (2022), Eq. (5); residual: Bordelon et al. (2023), Eq. (5).
  """
  name: str
  skip: bool

  def forward(self, prev, own):
    return own if prev is None or not self.skip else prev + own

  def backward(self, nxt, own):
    return own if nxt is None or not self.skip else nxt + own

  def hidden_std(self, w_std, beta):
    return beta * w_std if self.skip else w_std


PLAIN = Composition("plain", skip=False)
RESIDUAL = Composition("residual", skip=True)


def composition(residual: bool) -> Composition:
  return RESIDUAL if residual else PLAIN


def initial_kernels(activation, x_all, n_train, depth, *, w_std=1.0,
                    input_std=1.0, readout_std=1.0, residual=False,
                    branch_multiplier=1.0):
  """Exact t=0 feature/gradient kernels and NTK of a deep network.

  Bordelon and Pehlevan (2022), Eq. (5) at t = 0 (the NNGP/NTK recursions of
  Jacot et al. 2018, Eq. (4), with residual branches as in Bordelon et al.
  2023, Eq. (3)).

  Returns:
    (phis, gs, ntk): phis a list of L (Q, Q) kernels, gs a list of L (P, P)
    gradient kernels, ntk the (Q, P) NTK in units of the base learning rate.
  """
  act = act_lib.get(activation)
  comp = composition(residual)
  p = n_train
  kx = x_all @ x_all.T / x_all.shape[1]
  sig = _sigmas(depth, w_std, input_std, readout_std, comp, branch_multiplier)
  cov = input_std ** 2 * kx
  phis, dphis = [], []
  for l in range(depth):
    phi, dphi = act_lib.gaussian_kernels(act, cov)
    phis.append(phi)
    dphis.append(dphi)
    if l + 1 < depth:
      nxt = sig[l + 1] ** 2 * phi
      cov = comp.forward(cov, nxt)
  gs = [None] * depth
  gs[-1] = readout_std ** 2 * dphis[-1][:p, :p]
  for l in range(depth - 2, -1, -1):
    term = sig[l + 1] ** 2 * dphis[l][:p, :p] * gs[l + 1]
    gs[l] = comp.backward(gs[l + 1], term)
  # NTK on (all, train): needs G on test rows too, so recompute with Q rows.
  gq = [None] * depth
  gq[-1] = readout_std ** 2 * dphis[-1][:, :p]
  for l in range(depth - 2, -1, -1):
    term = sig[l + 1] ** 2 * dphis[l][:, :p] * gq[l + 1]
    gq[l] = comp.backward(gq[l + 1], term)
  ntk = input_std ** 2 * kx[:, :p] * gq[0] + readout_std ** 2 * phis[-1][:, :p]
  for l in range(depth - 1):
    ntk = ntk + sig[l + 1] ** 2 * phis[l][:, :p] * gq[l + 1]
  return phis, gs, ntk


@functools.partial(fast_compile.jit, static_argnames=("p", "act", "net", "arch"))
def _initial_state(x_all, p, *, act, net, arch):
  """t=0 feature and gradient kernels and the network's NTK, as one compiled program."""
  phis, gs, _ = initial_kernels(
      act, x_all, p, arch.depth, w_std=arch.W_std, input_std=arch.input_std,
      readout_std=arch.readout_std, residual=arch.residual,
      branch_multiplier=arch.branch_multiplier)
  return phis, gs, net.kernel_fn(x_all, x_all[:p], "ntk")


def _sigmas(depth, w_std, input_std, readout_std, comp, beta):
  """Effective std s_l of the matrix feeding layer l (0-based), then readout."""
  hidden = comp.hidden_std(w_std, beta)
  return [input_std] + [hidden] * (depth - 1) + [readout_std]


def _tile(k, tn):
  """(A, B) -> (tn, A, tn, B), constant in time."""
  return jnp.broadcast_to(k[None, :, None, :], (tn, k.shape[0], tn,
                                                k.shape[1]))


@functools.partial(
    jax.jit,
    static_argnames=("act", "depth", "steps", "n_train", "n_samples",
                     "n_response", "comp", "exact_linear", "response_method",
                     "kink_delta"))
def _solve(x_all, y, y_test, key, init_phis, init_gs, ntk0, *, act, depth, steps,
           n_train, n_samples, gamma0, lr, damping, tol, floor, max_iterations,
           w_std, input_std, readout_std, comp, beta, exact_linear,
           n_response, response_method="tangents", kink_delta=True):
  dtype = x_all.dtype
  q, d = x_all.shape
  p = n_train
  tn = steps + 1
  big_l = depth
  sig = _sigmas(depth, w_std, input_std, readout_std, comp, beta)
  kx = x_all @ x_all.T / d
  t_idx = jnp.arange(tn)
  strict = (t_idx[:, None] > t_idx[None, :]).astype(dtype)  # s < t
  weak = (t_idx[:, None] >= t_idx[None, :]).astype(dtype)  # s <= t

  # Sources: whitened Gaussian noise (Monte Carlo) or the identity basis of
  # the source space (exact linear networks).
  n_u = tn * q
  n_r = tn * p
  if exact_linear:
    sizes = [d, 1] + [n_u] * (big_l - 1) + [n_r] * (big_l - 1)
    s_dim = sum(sizes)
    basis = jnp.eye(s_dim, dtype=dtype)
    offs = np.cumsum([0] + sizes)
    blocks = [basis[offs[i]:offs[i + 1]] for i in range(len(sizes))]
    eps_w, eps_a = blocks[0], blocks[1][0]
    eps_u = blocks[2:2 + big_l - 1]
    eps_r = blocks[2 + big_l - 1:]
    weight = jnp.asarray(1.0, dtype)
  else:
    # Quenched Gaussian samples, moment-matched: the rows of the stacked
    # source matrix are made exactly orthogonal with squared norm n (when
    # n >= number of source coordinates), so that Stein estimates of the
    # response functions are least-squares regressions, exact for fields
    # linear in the sources.
    s_dim = n_samples
    sizes = [d, 1] + [n_u] * (big_l - 1) + [n_r] * (big_l - 1)
    total = sum(sizes)
    raw = jax.random.normal(key, (s_dim, total), dtype)
    if s_dim >= total:
      qmat, rmat = jnp.linalg.qr(raw)
      qmat = qmat * jnp.sign(jnp.diag(rmat))[None, :]
      raw = qmat * jnp.sqrt(jnp.asarray(s_dim, dtype))
    src = raw.T
    offs = np.cumsum([0] + sizes)
    blocks = [src[offs[i]:offs[i + 1]] for i in range(len(sizes))]
    eps_w, eps_a = blocks[0], blocks[1][0]
    eps_u = blocks[2:2 + big_l - 1]
    eps_r = blocks[2 + big_l - 1:]
    weight = jnp.asarray(1.0 / s_dim, dtype)
  u1 = input_std * (x_all @ eps_w) / math.sqrt(d)  # (Q, S)
  r_last = readout_std * eps_a  # (S,)

  def expect(a, b):
    return (a @ b.T) * weight

  def factor(c):
    """Factor F with F F^T = c that maps the whitened sources to samples.

    Exact linear solves need a triangular factor (Stein responses are
    triangular solves with it). Sampling uses the symmetric square root: the
    two-time kernels are nearly rank-deficient (exactly so in the lazy limit)
    and a Cholesky factor with an adaptively chosen jitter is a
    discontinuous, rounding-dominated function of them, so that the
    fixed-point map over quenched samples never settled below ~1e-3.
    """
    if exact_linear:
      return gaussian.cholesky_with_jitter(c)
    return gaussian.psd_sqrt(c), jnp.zeros((), dtype)

  def run_fields(params):
    """Samples the fields for the current order parameters."""
    phis, gs, resp_a, resp_b, delta = params
    delta_ext = jnp.concatenate([delta, jnp.zeros((1, p), dtype)])  # (tn, P)
    jit_max = jnp.zeros((), dtype)
    u_src, chol_u = [u1[None].repeat(tn, 0)], [None]
    for l in range(1, big_l):
      c = sig[l] ** 2 * phis[l - 1].reshape(n_u, n_u)
      chol, j = factor(c)
      jit_max = jnp.maximum(jit_max, j)
      chol_u.append(chol)
      u_src.append((chol @ eps_u[l - 1]).reshape(tn, q, s_dim))
    r_src, chol_r = [], []
    for l in range(big_l - 1):
      c = sig[l + 1] ** 2 * gs[l + 1].reshape(n_r, n_r)
      chol, j = factor(c)
      jit_max = jnp.maximum(jit_max, j)
      chol_r.append(chol)
      r_src.append((chol @ eps_r[l]).reshape(tn, p, s_dim))
    r_src.append(jnp.broadcast_to(r_last, (tn, p, s_dim)))
    # Coefficients of the history terms.
    drive = lr * gamma0 / p * delta_ext  # (tn, P) indexed [s, mu]
    m_h = [sig[0] ** 2 * jnp.einsum("vm,sm,ts->tvsm", kx[:, :p], drive,
                                    strict)]
    for l in range(1, big_l):
      phi_prev = jnp.transpose(phis[l - 1][:, :p], (2, 3, 0, 1))  # [t,v,s,m]
      m_h.append(sig[l] ** 2 * (
          resp_a[l - 1] + jnp.einsum("tvsm,sm,ts->tvsm", phi_prev, drive,
                                     strict)))
    m_z = []
    for l in range(big_l - 1):
      g_next = jnp.transpose(gs[l + 1], (2, 3, 0, 1))
      m_z.append(sig[l + 1] ** 2 * (
          resp_b[l] + jnp.einsum("tvsm,sm,ts->tvsm", g_next, drive, strict)))
    m_z.append(sig[-1] ** 2 * jnp.einsum("sm,ts,v->tvsm", drive, strict,
                                         jnp.ones((p,), dtype)))
    m_h = jnp.stack(m_h)  # (L, tn, Q, tn, P)
    m_z = jnp.stack(m_z)  # (L, tn, P, tn, P)
    u_all = jnp.stack(u_src)  # (L, tn, Q, S)
    r_all = jnp.stack(r_src)  # (L, tn, P, S)
    fields = scan_fields(u_all, r_all, m_h, m_z)
    fields.update(chol_u=chol_u, chol_r=chol_r, jitter=jit_max,
                  sources=(u_all, r_all, m_h, m_z))
    return fields

  def scan_fields(u_all, r_all, m_h, m_z, keep_fields=False):
    """Runs the single-site process over time for the given samples (with
    ``keep_fields`` also every layer's h^l(t) and xi^l(t), which the responses
    linearise around)."""
    n_cols = u_all.shape[-1]

    def step(carry, t):
      hist_g, hist_phi = carry  # (L, tn, P, S) each
      phis_t, dphis_t, lazy_h, hs_t, xis_t = [], [], [], [], [None] * big_l
      h_prev = hl_prev = None
      for l in range(big_l):
        chi = u_all[l, t] + jnp.einsum("qsp,spn->qn", m_h[l, t], hist_g[l])
        h = comp.forward(h_prev, chi)
        hs_t.append(h)
        hl = comp.forward(hl_prev, u_all[l, t])
        phi_t = act(h)
        phis_t.append(phi_t)
        dphis_t.append(act.derivative(h[:p]))
        lazy_h.append(hl)
        hist_phi = hist_phi.at[l, t].set(phi_t[:p])
        h_prev, hl_prev = h, hl
      gs_t, lazy_g = [None] * big_l, [None] * big_l
      g_next = gl_next = None
      xi_last = None
      for l in range(big_l - 1, -1, -1):
        xi = r_all[l, t] + jnp.einsum("psk,skn->pn", m_z[l, t], hist_phi[l])
        if l == big_l - 1:
          xi_last = xi[0]
        xis_t[l] = xi
        g = comp.backward(g_next, dphis_t[l] * xi)
        gl = comp.backward(gl_next, act.derivative(lazy_h[l][:p]) * r_all[l, t])
        gs_t[l], lazy_g[l] = g, gl
        hist_g = hist_g.at[l, t].set(g)
        g_next, gl_next = g, gl
      lazy_phi = [act(hl) for hl in lazy_h]
      out = (jnp.stack(phis_t), jnp.stack(gs_t), jnp.stack(lazy_phi),
             jnp.stack(lazy_g), xi_last)
      if keep_fields:
        out = out + (jnp.stack(hs_t), jnp.stack(xis_t))
      return (hist_g, hist_phi), out

    init = (jnp.zeros((big_l, tn, p, n_cols), dtype),
            jnp.zeros((big_l, tn, p, n_cols), dtype))
    _, outs = jax.lax.scan(step, init, t_idx)
    # (tn, L, Q|P, S) -> per layer (tn, Q|P, S)
    out = dict(zip(("phi", "g", "phi_lazy", "g_lazy", "xi"), outs[:5]))
    if keep_fields:
      out.update(h_all=outs[5], xi_all=outs[6])  # (tn, L, Q, S), (tn, L, P, S)
    return out

  def pathwise_responses(fields):
    """A^l, B^l as mean pathwise derivatives on the first n_response samples.

    A^l(t, s) = <d phi(h^l(t)) / d r^l(s)> and B^l(t, s) = <d g^{l+1}(t) /
    d u^{l+1}(s)> are derivatives of the sample mean with respect to a shift
    of one source at one time (unbiased and well conditioned even when the
    source covariances are nearly singular in time). They are the tangents of
    the sampled dynamics linearised around its path, one per direction
    (kind, layer, s, mu), run forward in time. A shift at time s leaves every
    field before s unchanged, so the directions are grouped by s into
    windows (`RESPONSE_WINDOW_STEPS`), and a window that starts at time a runs its
    tangents over [a, T] only, against histories of that length.
    """
    u_all, r_all, m_h, m_z = fields["sources"]
    k = min(n_response, s_dim)
    prim = scan_fields(u_all[..., :k], r_all[..., :k], m_h, m_z, keep_fields=True)
    h_all, xi_all = prim["h_all"], prim["xi_all"]  # (tn, L, Q, k), (tn, L, P, k)
    d1 = act.derivative(h_all)
    # (kink_delta=False drops the delta of a piecewise-linear phi'': the solver before it)
    d2xi = act.second_derivative(h_all[:, :, :p],
                                 samples_axis=-1 if kink_delta else None) * xi_all
    per = 2 * (big_l - 1) * p  # directions born at one time: (kind, layer, mu)
    n_win = min(tn, max(RESPONSE_WINDOWS[0],
                        min(RESPONSE_WINDOWS[1], round(tn / RESPONSE_WINDOW_STEPS))))
    bounds = sorted({round(tn * i / n_win) for i in range(n_win + 1)})
    resp_a = jnp.zeros((big_l - 1, tn, q, tn, p), dtype)  # [l, t, v, s, mu]
    resp_b = jnp.zeros((big_l - 1, tn, p, tn, p), dtype)
    rows = jnp.arange(q)
    for a, b in zip(bounds[:-1], bounds[1:]):
      w, n_dir = tn - a, (b - a) * per
      # Tangent histories take 2 L (w P) k numbers per direction: blocks of
      # directions keep them under RESPONSE_BLOCK_ELEMENTS.
      n_blk = -(-n_dir * 2 * big_l * w * p * k // RESPONSE_BLOCK_ELEMENTS)
      n_blk = min(max(n_blk, 1), n_dir)
      size = -(-n_dir // n_blk)
      # Direction j = ((birth - a) * 2 + kind) * (L - 1) * P + layer * P + mu;
      # padding directions are never born.
      j = np.arange(n_blk * size)
      birth = np.where(j < n_dir, j // per, -1).reshape(n_blk, size)
      kind = (j // ((big_l - 1) * p) % 2).reshape(n_blk, size)
      layer = (j // p % (big_l - 1)).reshape(n_blk, size)
      row = (j % p).reshape(n_blk, size)
      mh_w = jnp.moveaxis(m_h[:, a:, :, a:, :], 1, 0).reshape(w, big_l, q, w * p)
      mz_w = jnp.moveaxis(m_z[:, a:, :, a:, :], 1, 0).reshape(w, big_l, p, w * p)

      def block(meta, a=a, w=w, mh_w=mh_w, mz_w=mz_w):
        birth, kind, layer, row = meta
        # the source entries each direction shifts (u^l: rows of Q, r^l: rows of P)
        hit = rows[:, None] == row[None]
        moves_u = [((kind == 1) & (layer == l - 1))[None] & hit for l in range(big_l)]
        moves_r = [((kind == 0) & (layer == l))[None] & hit[:p] for l in range(big_l)]

        def step(carry, x):
          hist_dg, hist_dphi = carry  # (L, w P, directions, k)
          mh, mz, d1t, d2t, i = x
          born = (birth == i)[None]  # unit shifts enter at their time only
          dh = None
          d_phis, d_dphis = [], []
          for l in range(big_l):
            dchi = (moves_u[l] & born).astype(dtype)[..., None] + jnp.einsum(
                "qk,kdn->qdn", mh[l], hist_dg[l])
            dh = comp.forward(dh, dchi)
            d_phi = d1t[l][:, None, :] * dh
            d_phis.append(d_phi)
            d_dphis.append(d2t[l][:, None, :] * dh[:p])
            hist_dphi = jax.lax.dynamic_update_slice(
                hist_dphi, d_phi[None, :p], (l, i * p, 0, 0))
          dg = None
          d_gs = [None] * big_l
          for l in range(big_l - 1, -1, -1):
            dxi = (moves_r[l] & born).astype(dtype)[..., None] + jnp.einsum(
                "pk,kdn->pdn", mz[l], hist_dphi[l])
            dg = comp.backward(dg, d_dphis[l] + d1t[l][:p, None, :] * dxi)
            d_gs[l] = dg
            hist_dg = jax.lax.dynamic_update_slice(hist_dg, dg[None],
                                                   (l, i * p, 0, 0))
          means = (jnp.stack([jnp.mean(x, -1) for x in d_phis[:-1]]),
                   jnp.stack([jnp.mean(x, -1) for x in d_gs[1:]]))
          return (hist_dg, hist_dphi), means

        zeros = jnp.zeros((big_l, w * p, birth.shape[0], k), dtype)
        xs = (mh_w, mz_w, d1[a:], d2xi[a:], jnp.arange(w))
        return jax.lax.scan(step, (zeros, zeros), xs)[1]

      meta = tuple(jnp.asarray(v) for v in (birth, kind, layer, row))
      d_phi, d_g = jax.lax.map(block, meta)  # (blocks, w, L-1, Q|P, size)
      d_phi = jnp.moveaxis(d_phi, 0, -2).reshape(w, big_l - 1, q, -1)[..., :n_dir]
      d_g = jnp.moveaxis(d_g, 0, -2).reshape(w, big_l - 1, p, -1)[..., :n_dir]
      d_phi = d_phi.reshape(w, big_l - 1, q, b - a, 2, big_l - 1, p)
      d_g = d_g.reshape(w, big_l - 1, p, b - a, 2, big_l - 1, p)
      for l in range(big_l - 1):
        resp_a = resp_a.at[l, a:, :, a:b].set(d_phi[:, l, :, :, 0, l])
        resp_b = resp_b.at[l, a:, :, a:b].set(d_g[:, l, :, :, 1, l])
    new_a = [resp_a[l] * strict[:, None, :, None] for l in range(big_l - 1)]
    new_b = [resp_b[l] * weak[:, None, :, None] for l in range(big_l - 1)]
    return new_a, new_b

  def jvp_responses(fields):
    """The same A^l, B^l by forward-mode differentiation of the sample means
    through the whole sampled dynamics, one direction at a time (the definition
    the tangent recursion of `pathwise_responses` is checked against; several
    times slower). Derivatives of the samples only: no delta at a ReLU kink, so it
    is the definition for smooth activations."""
    u_all, r_all, m_h, m_z = fields["sources"]
    k = min(n_response, s_dim)
    u_sub, r_sub = u_all[..., :k], r_all[..., :k]
    shape = (big_l - 1, tn, p)

    def means(off):
      u = u_sub.at[1:, :, :p, :].add(off[1][..., None])
      r = r_sub.at[:-1].add(off[0][..., None])
      out = scan_fields(u, r, m_h, m_z)
      return (jnp.mean(out["phi"][:, :-1], axis=-1),  # (tn, L-1, Q)
              jnp.mean(out["g"][:, 1:], axis=-1))  # (tn, L-1, P)

    n_dir = 2 * (big_l - 1) * tn * p
    basis = jnp.eye(n_dir, dtype=dtype).reshape(n_dir, 2, *shape)
    zero = jnp.zeros((2, *shape), dtype)
    d_phi, d_g = jax.lax.map(lambda v: jax.jvp(means, (zero,), (v,))[1], basis)
    d_phi = d_phi.reshape(2, big_l - 1, tn, p, tn, big_l - 1, q)
    d_g = d_g.reshape(2, big_l - 1, tn, p, tn, big_l - 1, p)
    # [t, v, s, mu] from [kind, layer, s, mu, t, layer, v]
    new_a = [jnp.transpose(d_phi[0, l, :, :, :, l], (2, 3, 0, 1)) *
             strict[:, None, :, None] for l in range(big_l - 1)]
    new_b = [jnp.transpose(d_g[1, l, :, :, :, l], (2, 3, 0, 1)) *
             weak[:, None, :, None] for l in range(big_l - 1)]
    return new_a, new_b

  def stein(cross, chol):
    """<dx/dr> from <x eps^T> for r = chol eps (exact for linear fields)."""
    return jax.scipy.linalg.solve_triangular(chol, cross.T, lower=True,
                                             trans="T").T

  def order_parameters(fields, responses=True):
    """Kernels, responses (unless ``responses`` is False: after the loop they are not
    needed), predictions and NTK from the sampled fields."""
    phi_tr, g_tr = fields["phi"], fields["g"]
    new_phis, new_gs, new_a, new_b = [], [], [], []
    for l in range(big_l):
      pf = phi_tr[:, l].reshape(n_u, s_dim)
      gf = g_tr[:, l].reshape(n_r, s_dim)
      new_phis.append(expect(pf, pf).reshape(tn, q, tn, q))
      new_gs.append(expect(gf, gf).reshape(tn, p, tn, p))
    if not exact_linear:
      # Control variate: the exact t = 0 kernels replace their Monte Carlo
      # estimates on the same samples (a shift constant in time), so that
      # only the change of the kernels during training is sampled and the
      # lazy limit (gamma0 -> 0) has the exact NTK.
      new_phis = [k + _tile(k0 - k[0, :, 0, :], tn)
                  for k, k0 in zip(new_phis, init_phis)]
      new_gs = [k + _tile(k0 - k[0, :, 0, :], tn)
                for k, k0 in zip(new_gs, init_gs)]
    if exact_linear and responses:
      for l in range(big_l - 1):
        # Fields are linear in the sources: the responses are the exact
        # coefficients (the whitened basis undone by the Cholesky factor).
        x = (phi_tr[:, l] - fields["phi_lazy"][:, l]).reshape(n_u, s_dim)
        resp = stein(expect(x, eps_r[l]), fields["chol_r"][l])
        new_a.append(resp.reshape(tn, q, tn, p) * strict[:, None, :, None])
        x = (g_tr[:, l + 1] - fields["g_lazy"][:, l + 1]).reshape(n_r, s_dim)
        resp = stein(expect(x, eps_u[l]), fields["chol_u"][l + 1])
        new_b.append(resp.reshape(tn, p, tn, q)[..., :p] *
                     weak[:, None, :, None])
    elif big_l > 1 and responses:
      new_a, new_b = (jvp_responses if response_method == "jvp" else
                      pathwise_responses)(fields)
    # Predictions f_v(t) = <xi^L(t) phi(h^L_v(t))> / gamma0 (centred).
    phi_last = phi_tr[:, -1]  # (tn, Q, S)
    prod = fields["xi"][:, None, :] * phi_last - r_last[None, None, :] * (
        phi_last[0][None])
    f = jnp.sum(prod, axis=-1) * weight / gamma0
    # NTK(t) on training points.
    diag_phi = [jnp.einsum("tqtu->tqu", k[:, :p, :, :p]) for k in new_phis]
    diag_g = [jnp.einsum("tqtu->tqu", k) for k in new_gs]
    ntk = sig[0] ** 2 * kx[None, :p, :p] * diag_g[0] + sig[-1] ** 2 * (
        diag_phi[-1])
    for l in range(big_l - 1):
      ntk = ntk + sig[l + 1] ** 2 * diag_phi[l] * diag_g[l + 1]
    return new_phis, new_gs, new_a, new_b, f, ntk

  def update(params, jit_max):
    phis, gs, _, _, delta = params
    fields = run_fields(params)
    new_phis, new_gs, new_a, new_b, f, ntk = order_parameters(fields)
    inc = f[1:, :p] - f[:-1, :p]
    delta_new = core.error_signal(inc, ntk[:steps], delta, y, lr)
    res = core.rel_change(delta_new, delta)
    for a, b in zip(new_phis + new_gs, list(phis) + list(gs)):
      res = jnp.maximum(res, core.rel_change(a, b))
    new = (list(new_phis), list(new_gs), list(new_a), list(new_b), delta_new)
    return new, jnp.maximum(jit_max, fields["jitter"]), res

  delta0 = lazy.gd_error(ntk0[:p, :p], y, lr, steps)[:steps]
  params0 = (
      [_tile(k, tn) for k in init_phis],
      [_tile(k, tn) for k in init_gs],
      [jnp.zeros((tn, q, tn, p), dtype) for _ in range(big_l - 1)],
      [jnp.zeros((tn, p, tn, p), dtype) for _ in range(big_l - 1)],
      delta0,
  )
  params, jit_max, it, res, stalled = core.damped_fixed_point(
      update, params0, jnp.zeros((), dtype), damping=damping, tol=tol,
      max_iterations=max_iterations, floor=floor)
  fields = run_fields(params)
  phis, gs, _, _, f, ntk = order_parameters(fields, responses=False)
  # Monte Carlo standard error of the train loss (delta method).
  phi_last = fields["phi"][:, -1]
  prod = fields["xi"][:, None, :] * phi_last - r_last[None, None, :] * (
      phi_last[0][None])
  resid = f[:, :p] - y[None]
  per_sample = jnp.einsum("tps,tp->ts", prod[:, :p], resid) / (p * gamma0)
  # The same for the test loss, and the relative standard error of the
  # sampled last-layer kernel Phi^L(T, T) on training points.
  test_resid = f[:, p:] - y_test[None]
  per_test = jnp.einsum("tps,tp->ts", prod[:, p:], test_resid) / (
      max(q - p, 1) * gamma0)
  pl = phi_last[-1, :p]
  pair = pl[:, None, :] * pl[None, :, :]
  kern_se = jnp.linalg.norm(jnp.std(pair, axis=-1)) / jnp.sqrt(s_dim) / (
      jnp.maximum(jnp.linalg.norm(jnp.mean(pair, axis=-1)),
                  jnp.finfo(dtype).tiny))
  if exact_linear:
    loss_se = jnp.zeros((tn,), dtype)
    test_se = jnp.zeros((tn,), dtype)
    kern_se = jnp.zeros((), dtype)
  else:
    loss_se = jnp.std(per_sample, axis=-1) / jnp.sqrt(s_dim)
    test_se = jnp.std(per_test, axis=-1) / jnp.sqrt(s_dim)
  return dict(f=f, ntk=ntk, phis=phis, gs=gs,
              n_iterations=it, residual=res, stalled=stalled,
              jitter=jnp.maximum(jit_max, fields["jitter"]), loss_se=loss_se,
              test_loss_se=test_se, kernel_rel_se=kern_se)


def _single_threaded_lapack():
  """A context in which the BLAS/LAPACK library behind XLA:CPU's linear algebra runs on one thread.

  The solve's factorisations (QR of the (n_samples, sources) draw, eigendecompositions of
  the (T P)-sized source covariances every iteration) are small, and OpenBLAS threads
  contending with XLA's own thread pool made them ~100x slower than on one thread
  (a 91 x 91 float32 eigh: 78 ms against 0.6 ms on a loaded 2-core machine; the QR of
  4096 x 175: 3 s against 22 ms). The results are the same.
  """
  try:
    import threadpoolctl  # pylint: disable=g-import-not-at-top  (scikit-learn's)
  except ImportError:  # pragma: no cover
    return contextlib.nullcontext()
  return threadpoolctl.threadpool_limits(1, user_api="blas")


def solve_fields(arch, prob, net, *, lr, steps, seed=0, n_samples=2048, damping=0.7,
                 tol=None, max_iterations=200, kernel_times=None,
                 raise_on_nonconvergence=True, n_response=256,
                 exact_linear=None) -> results.DMFTResult:
  """The deep and residual field equations on the solver core (see `dmft.solve`).

  Bordelon and Pehlevan (2022), Eqs. (5)-(7) and Algorithm 1 (alternating Monte Carlo
  solver), in discrete time; residual branches as in Bordelon et al. (2023), Eq. (5).
  Linear networks are solved exactly (no sampling) unless ``exact_linear=False``.

  Returns:
    A `DMFTResult`. Its sampling accuracy: `mc_error`, the Monte Carlo standard error
    of the train loss at each step; info["test_mc_error"] the same for the test loss
    (with y_test); info["kernel_rel_error"] the relative standard error of the sampled
    last-layer kernel at the final step. The t = 0 kernels and NTK are exact (control
    variate), so the lazy limit is limited only by these errors.
  """
  act = act_lib.get(arch.activation if arch.activation is not None else "linear")
  if exact_linear is None:
    exact_linear = act.is_linear
  if exact_linear and not act.is_linear:
    raise ValueError(f"exact_linear requires a linear network, got activation {act.name}")
  defect = None if exact_linear else act_lib.nonsmooth(act, 2)
  if defect:
    raise ValueError(
        f"activation {act.name}: {defect}. The sampled deep DMFT takes phi' and phi'' as "
        "JAX differentiates the samples, which misses the delta function there; use "
        "stax.ABRelu / Relu / LeakyRelu / Abs (their kink is handled) or a smooth activation")
  depth, gamma0, residual = arch.depth, arch.gamma0, arch.residual
  x_all, p, yy, dtype = prob.x_all, prob.n_train, prob.y, prob.dtype
  n_samples = val.check_int(n_samples, "n_samples", minimum=2)
  damping = val.check_unit_interval(damping, "damping")
  floor = 0.0  # no stall rule unless the tolerance is the sampled default
  if tol is None:
    tol = 1e-7 if dtype == jnp.float64 else 1e-4
    if not exact_linear and not act.is_linear:
      # (Linear fields are exact on the moment-matched samples.) The sampled order
      # parameters carry a relative Monte Carlo error ~ n_samples^-1/2, and with kinked
      # activations (relu) the map over the quenched samples jumps by ~1/n_samples
      # whenever a sample crosses a kink, so changes far below the sampling error can
      # neither be resolved nor always be reached: stop once they are 5x below it.
      tol = max(tol, MC_TOL_FACTOR / math.sqrt(n_samples))
      # Short of it, a residual that stalls below the floor ends the solve as converged.
      floor = max(tol, MC_FLOOR_FACTOR / math.sqrt(n_samples))
  tol = val.check_positive_number(tol, "tol")
  max_iterations = val.check_int(max_iterations, "max_iterations", minimum=1)
  n_response = val.check_int(n_response, "n_response", minimum=1)
  key = val.seed_key(seed)
  w_std, input_std, readout_std = arch.W_std, arch.input_std, arch.readout_std
  beta = arch.branch_multiplier
  # The exact initial NTK (the control variate's reference) is the network's kernel_fn.
  # (one compiled program for every gamma0 and width: `network.kernel_network`)
  k_net, k_arch = network.kernel_network(arch)
  phis0, gs0, ntk0 = _initial_state(x_all, p, act=act, net=k_net, arch=k_arch)
  lazy.check_stable(ntk0[:p, :p], lr, p, gamma0)
  # (zeros when there are no test targets; the test error is then unused)
  y_test_all = jnp.zeros((x_all.shape[0] - p,), dtype) if prob.y_test is None else (
      jnp.asarray(prob.y_test, dtype))
  with _single_threaded_lapack():
    out = _solve(x_all, yy, y_test_all, key, phis0, gs0, ntk0, act=act, depth=depth,
                 steps=steps, n_train=p, n_samples=n_samples, gamma0=gamma0,
                 lr=lr, damping=damping, tol=tol, floor=floor,
                 max_iterations=max_iterations, w_std=w_std, input_std=input_std,
                 readout_std=readout_std, comp=composition(residual), beta=beta,
                 exact_linear=bool(exact_linear), n_response=n_response)
    out = jax.device_get(out)
  res = float(out["residual"])
  n_it = int(out["n_iterations"])
  f = np.asarray(out["f"])
  loss = core.losses(f[:, :p], yy)
  converged = core.conclude(
      what="deep", residual=res, tol=tol, n_iterations=n_it,
      max_iterations=max_iterations, raise_on_nonconvergence=raise_on_nonconvergence,
      loss=loss, lr=lr, gamma0=gamma0, stalled=bool(out["stalled"]),
      hint="lower damping or lr, raise max_iterations, or (sampled solves) leave tol at "
      "its default, which is set by the Monte Carlo error of n_samples")
  if float(out["jitter"]) >= gaussian.MAX_JITTER:
    raise ValueError("a kernel was not positive semi-definite even with "
                     f"relative jitter {gaussian.MAX_JITTER}")
  t_index = np.asarray(core.time_index(steps, kernel_times))
  phi = np.stack([np.asarray(k)[t_index][:, :p][:, :, t_index][..., :p]
                  for k in out["phis"]])
  phi = np.transpose(phi, (0, 1, 3, 2, 4))  # (L, K, K, P, P)
  g = np.stack([np.asarray(k)[t_index][:, :, t_index]
                for k in out["gs"]])
  g = np.transpose(g, (0, 1, 3, 2, 4))
  f_test = test_loss = None
  mc_info = {}
  if not exact_linear:
    mc_info["kernel_rel_error"] = float(out["kernel_rel_se"])
  if prob.x_test is not None:
    f_test = f[:, p:]
    if prob.y_test is not None:
      test_loss = core.losses(f_test, prob.y_test)
      mc_info["test_mc_error"] = np.asarray(out["test_loss_se"])
  return results.DMFTResult(
      loss=loss, f_train=f[:, :p], f_test=f_test, test_loss=test_loss,
      ntk=np.asarray(out["ntk"]), ntk_test_train=None,
      kernel_times=t_index, phi=phi, g=g, n_iterations=n_it, residual=res,
      converged=converged, jitter=float(out["jitter"]),
      mc_error=np.asarray(out["loss_se"]),
      info=dict(solver="deep_linear" if exact_linear else "deep",
                depth=depth, residual=bool(residual), branch_multiplier=beta,
                activation=act.name, gamma0=gamma0, lr=lr, steps=steps,
                n_samples=0 if exact_linear else n_samples, damping=damping,
                tol=tol, mc_floor=floor, stalled=bool(out["stalled"]),
                W_std=w_std, input_std=input_std,
                readout_std=readout_std, dtype=str(np.dtype(dtype)),
                **mc_info))


def solve_deep(X, y, *, depth, activation="relu", gamma0=1.0, lr=1.0,
               steps=50, n_samples=2048, seed=0, X_test=None, y_test=None,
               W_std=1.0, input_std=1.0, readout_std=1.0, residual=False,
               branch_multiplier=None, damping=0.7, tol=None,
               max_iterations=200, kernel_times=None,
               raise_on_nonconvergence=True, n_response=256,
               exact_linear=False) -> results.DMFTResult:
  """`dmft.solve` of the deep (optionally residual) mup network these arguments describe.

  Bordelon and Pehlevan (2022), Eqs. (5)-(7) and Algorithm 1, in discrete time;
  residual branches as in Bordelon et al. (2023), Eq. (5).

  Args:
    depth: hidden layers L (>= 1; residual: the input embedding and L - 1 blocks).
    activation: name, callable or stax activation layer.
    W_std, input_std, readout_std: multipliers of hidden, input and readout weights.
    residual: blocks ``x + beta Dense(phi(x))`` under ``depth_mup(L - 1, gamma0)``.
    branch_multiplier: beta (default (L - 1)^-1/2, what depth_mup(L - 1) gives);
      another value gives the branch exponent log(1/beta) / log(L - 1).
    exact_linear: solve a linear network without sampling (`solve_deep_linear`); a
      linear activation is otherwise sampled like any other.
    The rest: see `dmft.solve`. With depth = 1 the two-layer solver runs (n_response
    and exact_linear do not apply).
  """
  from dmft import solver as solve_lib  # pylint: disable=g-import-not-at-top
  depth = val.check_int(depth, "depth", minimum=1)
  gamma0 = val.check_positive_number(gamma0, "gamma0")
  act = act_lib.get(activation)
  if exact_linear and not act.is_linear:
    raise ValueError(f"exact_linear requires activation='linear', got {act.name}")
  if residual and depth < 2:
    raise ValueError("a residual network needs depth >= 2 (embedding plus at "
                     f"least one block), got depth={depth}")
  exponent = 0.5
  if residual and branch_multiplier is not None:
    beta = val.check_positive_number(branch_multiplier, "branch_multiplier")
    exponent = 0.0 if depth == 2 else -math.log(beta) / math.log(depth - 1)
    if depth == 2 and beta != 1.0:
      raise ValueError("with one residual block the branch multiplier is 1 for every "
                       f"depth exponent, got branch_multiplier={beta}")
  net = network.build(1, depth=depth, activation=act.layer, gamma0=gamma0,
                      W_std=val.check_positive_number(W_std, "W_std"),
                      input_std=val.check_positive_number(input_std, "input_std"),
                      readout_std=val.check_positive_number(readout_std, "readout_std"),
                      residual=bool(residual), branch_exponent=exponent)
  options = dict(seed=seed, n_samples=n_samples, damping=damping, tol=tol,
                 max_iterations=max_iterations, kernel_times=kernel_times,
                 raise_on_nonconvergence=raise_on_nonconvergence)
  if depth > 1:
    options.update(n_response=n_response, exact_linear=bool(exact_linear))
  return solve_lib.solve(net, X, y, lr=lr, steps=steps, X_test=X_test, y_test=y_test,
                         **options)
