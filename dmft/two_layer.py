"""DMFT of a two-layer network trained by full-batch gradient descent.

Network (mean-field / muP, all weights N(0, 1)):
  h_i(x) = W_std * w_i . x / sqrt(D),   f(x) = readout_std / (gamma0 N) *
  sum_i a_i phi(h_i(x)),   SGD learning rate lr * gamma0^2 * N for every layer.
Loss (1/(2P)) sum_mu (f(x_mu) - y_mu)^2, discrete gradient-descent steps.

At infinite width every neuron evolves independently given the error signal
Delta_mu(t) = y_mu - f_mu(t):
  a(t+1) = a(t) + lr gamma0 readout_std (1/P) sum_mu Delta_mu(t) phi(h_mu(t))
  h_nu(t+1) = h_nu(t) + lr gamma0 readout_std W_std^2 (1/P)
              sum_mu Delta_mu(t) a(t) phi'(h_mu(t)) K^x_{mu nu}
and f_nu(t) = readout_std / gamma0 * E[a(t) phi(h_nu(t))]. The error signal is
found by damped fixed-point iteration. The expectation is a Monte Carlo average
over `n_samples` neurons (antithetic in a) with a control variate: the exact
initial NTK (Gaussian integrals) replaces its Monte Carlo estimate, so that the
only Monte Carlo error left is in the feature-learning correction, which
vanishes as gamma0 -> 0 (the lazy limit is then exact).
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from dmft import activations as act_lib
from dmft import core
from dmft import fast_compile
from dmft import lazy
from dmft import network
from dmft import results
from kernels import validation as val


def initial_kernels(activation, x_all, w_std=1.0, readout_std=1.0):
  """Exact t=0 feature and gradient kernels of the two-layer network on all points.

  Bordelon and Pehlevan (2022), Eq. (5) at t = 0: Phi = E phi phi and
  G = readout_std^2 E phi' phi', from the activation layer's Gaussian dual.

  Returns:
    (phi0, g0): each (Q, Q) over all Q points (train first).
  """
  act = act_lib.get(activation)
  kx = x_all @ x_all.T / x_all.shape[1]
  phi0, dphi0 = act_lib.gaussian_kernels(act, w_std ** 2 * kx)
  return phi0, readout_std ** 2 * dphi0


@functools.partial(fast_compile.jit, static_argnames=("act", "net"))
def _initial_kernels(x_all, w_std, readout_std, *, act, net):
  """Exact t=0 kernels and the network's NTK (its kernel_fn), as one compiled program.

  (Run op by op, the dozens of small kernel operations each compiled separately
  and dominated a first call.)
  """
  phi0, g0 = initial_kernels(act, x_all, w_std, readout_std)
  return phi0, g0, net.kernel_fn(x_all, None, "ntk")


@functools.partial(
    fast_compile.jit,
    static_argnames=("act", "steps", "n_train", "t_index", "march"))
def _solve(x_all, y, ntk0_exact, a_half, w_half, *, act, gamma0, lr, steps,
           n_train, damping, tol, max_iterations, w_std, readout_std, t_index,
           march):
  dtype = x_all.dtype
  q, d = x_all.shape
  p = n_train
  kx = x_all @ x_all.T / d
  kx_tq = kx[:p, :]  # (P, Q)
  a0 = jnp.concatenate([a_half, -a_half])  # antithetic readout weights
  w0 = jnp.concatenate([w_half, w_half])
  h0 = w_std * (w0 @ x_all.T) / math.sqrt(d)  # (n, Q)
  n = a0.shape[0]
  phi_0 = act(h0)
  dphi_0 = act.derivative(h0)
  c_step = lr * gamma0 * readout_std

  # Monte Carlo initial NTK (the linearisation of the sampled dynamics).
  ntk0_mc = readout_std ** 2 * (phi_0.T @ phi_0[:, :p]) / n + w_std ** 2 * (
      kx[:, :p] * ((a0[:, None] * dphi_0).T @ (a0[:, None] * dphi_0[:, :p]))
      * readout_std ** 2 / n)  # (Q, P)
  ntk_shift = ntk0_exact[:, :p] - ntk0_mc

  def observe(carry):
    """Predictions, NTK and fields at the current time."""
    da, dh, cum_delta = carry
    a_t = a0 + da
    h_t = h0 + dh
    phi_t = act(h_t)
    dphi_t = act.derivative(h_t)
    # Prediction at time t from the fields (control-variate corrected).
    diff = da[:, None] * phi_t + a0[:, None] * (phi_t - phi_0)
    f_t = readout_std / gamma0 * jnp.mean(diff, axis=0)
    f_t = f_t + lr / p * (ntk_shift @ cum_delta)
    g_t = readout_std * a_t[:, None] * dphi_t  # gradient field, (n, Q)
    # Instantaneous NTK (Q, P), control-variate corrected.
    ntk_t = readout_std ** 2 * (phi_t.T @ phi_t[:, :p]) / n + w_std ** 2 * (
        kx[:, :p] * (g_t.T @ g_t[:, :p]) / n) + ntk_shift
    return dict(a=a_t, phi=phi_t, dphi=dphi_t, f=f_t, g=g_t, ntk=ntk_t,
                diff=diff)

  def advance(carry, obs, delta_t):
    """One gradient-descent step of the fields driven by the error delta_t."""
    da, dh, cum_delta = carry
    step_a = c_step / p * (obs["phi"][:, :p] @ delta_t)
    step_h = c_step * w_std ** 2 / p * (obs["a"][:, None] * (
        (obs["dphi"][:, :p] * delta_t[None, :]) @ kx_tq))
    return da + step_a, dh + step_h, cum_delta + delta_t

  def fields_step(carry, delta_t):
    obs = observe(carry)
    if delta_t is None:  # causal time-marching: the error of the present
      delta_t = y - obs["f"][:p]
    new = advance(carry, obs, delta_t)
    return new, (obs["f"], obs["ntk"], obs["phi"], obs["g"], obs["diff"],
                 delta_t)

  def dynamics(delta):
    """Runs the fields for the error signal delta (steps, P)."""

    def step(carry, delta_t):
      carry, (f_t, ntk_t, phi_t, g_t, _, _) = fields_step(carry, delta_t)
      phi_diag = jnp.einsum("np,np->p", phi_t[:, :p], phi_t[:, :p]) / n
      g_diag = jnp.einsum("np,np->p", g_t[:, :p], g_t[:, :p]) / n
      return carry, (f_t, ntk_t, phi_diag, g_diag)

    init = (jnp.zeros_like(a0), jnp.zeros_like(h0), jnp.zeros((p,), dtype))
    delta_ext = jnp.concatenate([delta, jnp.zeros((1, p), dtype)])
    _, out = jax.lax.scan(step, init, delta_ext)
    return out

  def update(delta, tracked):
    """New error signal from the fields it drives; phi and g are tracked for the residual."""
    phi_d, g_d = tracked
    f, ntk, phi_new, g_new = dynamics(delta)
    inc = f[1:, :p] - f[:-1, :p]  # (steps, P) increments driven by delta
    # The direct effect of the error is taken through the instantaneous NTK; the
    # feature-learning feedback (O(gamma0^2)) is iterated.
    delta_new = core.error_signal(inc, ntk[:steps, :p], delta, y, lr)
    res = jnp.maximum(core.rel_change(delta_new, delta),
                      jnp.maximum(core.rel_change(phi_new, phi_d),
                                  core.rel_change(g_new, g_d)))
    return delta_new, (phi_new, g_new), res

  if march:
    # Causal time-marching: the error of each step is computed from the
    # fields of that step, so the discrete-time equations hold exactly (the
    # fixed-point residual is zero by construction) after one pass.
    delta = None
    it = 1
    res = jnp.zeros((), dtype)
  else:
    # Initial guess: the lazy (NTK) error signal.
    delta_init = lazy.gd_error(ntk0_exact[:p, :p], y, lr, steps)[:steps]
    zeros_kd = jnp.zeros((steps + 1, p), dtype)
    delta, _, it, res, _ = core.damped_fixed_point(
        update, delta_init, (zeros_kd, zeros_kd), damping=damping, tol=tol,
        max_iterations=max_iterations)

  # Final pass: predictions, NTK(t) and two-time kernels.
  def final_step(carry, delta_t):
    carry, (f_t, ntk_t, phi_t, g_t, diff, _) = fields_step(carry, delta_t)
    # Standard error of the train loss from the per-neuron spread of f.
    resid = f_t[:p] - y
    loss_samples = readout_std / gamma0 * diff[:, :p] @ resid / p
    loss_se = jnp.std(loss_samples) / jnp.sqrt(n)
    return carry, (f_t, ntk_t, phi_t[:, :p], g_t[:, :p], loss_se)

  init = (jnp.zeros_like(a0), jnp.zeros_like(h0), jnp.zeros((p,), dtype))
  if delta is None:
    _, (f, ntk, phis, gs, loss_se) = jax.lax.scan(
        lambda c, _: final_step(c, None), init, None, length=steps + 1)
  else:
    delta_ext = jnp.concatenate([delta, jnp.zeros((1, p), dtype)])
    _, (f, ntk, phis, gs, loss_se) = jax.lax.scan(final_step, init,
                                                  delta_ext)
  idx = jnp.asarray(t_index)
  phis, gs = phis[idx], gs[idx]
  phi_two = jnp.einsum("tnp,snq->tspq", phis, phis) / n
  g_two = jnp.einsum("tnp,snq->tspq", gs, gs) / n
  return dict(f=f, ntk=ntk, phi=phi_two, g=g_two, n_iterations=it,
              residual=res, loss_se=loss_se,
              phi0_mc=(phi_0[:, :p].T @ phi_0[:, :p]) / n,
              g0_mc=readout_std ** 2 * ((a0[:, None] * dphi_0[:, :p]).T @ (
                  a0[:, None] * dphi_0[:, :p])) / n)


def solve_fields(arch, prob, net, *, lr, steps, seed=0, n_samples=4096, damping=1.0,
                 tol=None, max_iterations=None, kernel_times=None,
                 raise_on_nonconvergence=True, method="march") -> results.DMFTResult:
  """The two-layer field equations on the solver core (see `dmft.solve` for the arguments).

  Bordelon and Pehlevan (2022), Eqs. (5)-(7) in discrete time for L = 1.
  """
  act = act_lib.get(arch.activation if arch.activation is not None else "linear")
  defect = act_lib.nonsmooth(act, 1)
  if defect:
    raise ValueError(
        f"activation {act.name}: {defect}. The DMFT takes phi' as JAX differentiates the "
        "samples, which misses the delta function there; use a continuous activation")
  x_all, p, yy = prob.x_all, prob.n_train, prob.y
  n_samples = val.check_int(n_samples, "n_samples", minimum=2)
  damping = val.check_unit_interval(damping, "damping")
  dtype = prob.dtype
  if tol is None:
    tol = 1e-9 if dtype == jnp.float64 else 1e-5
  tol = val.check_positive_number(tol, "tol")
  if max_iterations is None:
    max_iterations = steps + 10
  max_iterations = val.check_int(max_iterations, "max_iterations", minimum=1)
  t_index = core.time_index(steps, kernel_times)
  if method not in ("march", "iterate"):
    raise ValueError(f"method must be 'march' or 'iterate', got {method!r}")
  w_std, readout_std, gamma0 = arch.input_std, arch.readout_std, arch.gamma0

  # The exact initial NTK (the control variate's reference) is the network's kernel_fn.
  # (one compiled program for every gamma0 and width: `network.kernel_network`)
  phi0, g0, ntk0 = _initial_kernels(x_all, w_std, readout_std, act=act,
                                    net=network.kernel_network(arch)[0])
  n_half = (n_samples + 1) // 2  # antithetic pairs: readout (n_half,), input (n_half, d)
  a_half, w_half = core.gaussian_draws(seed, [(n_half,), (n_half, x_all.shape[1])], dtype)
  lazy.check_stable(ntk0[:p, :p], lr, p, gamma0)
  out = _solve(x_all, yy, ntk0, a_half, w_half, act=act, gamma0=gamma0, lr=lr,
               steps=steps, n_train=p,
               damping=damping, tol=tol, max_iterations=max_iterations,
               w_std=w_std, readout_std=readout_std, t_index=t_index,
               march=method == "march")
  out = jax.device_get(out)
  f = np.asarray(out["f"])
  res = float(out["residual"])
  n_it = int(out["n_iterations"])
  loss = core.losses(f[:, :p], yy)
  converged = core.conclude(
      what="two-layer", residual=res, tol=tol, n_iterations=n_it,
      max_iterations=max_iterations, raise_on_nonconvergence=raise_on_nonconvergence,
      loss=loss, lr=lr, gamma0=gamma0,
      hint="lower lr or damping, raise max_iterations, or use method='march'")
  # Control variate on the reported kernels: exact t=0 kernels.
  phi_two = out["phi"] + (np.asarray(phi0[:p, :p]) - out["phi0_mc"])
  g_two = out["g"] + (np.asarray(g0[:p, :p]) - out["g0_mc"])
  ntk = out["ntk"]
  f_test = test_loss = ntk_tt = None
  if prob.x_test is not None:
    f_test = f[:, p:]
    ntk_tt = ntk[:, p:, :]
    if prob.y_test is not None:
      test_loss = core.losses(f_test, prob.y_test)
  return results.DMFTResult(
      loss=loss, f_train=f[:, :p], f_test=f_test, test_loss=test_loss,
      ntk=ntk[:, :p, :], ntk_test_train=ntk_tt,
      kernel_times=np.asarray(t_index), phi=phi_two[None], g=g_two[None],
      n_iterations=n_it, residual=res, converged=converged, jitter=0.0,
      mc_error=np.asarray(out["loss_se"]),
      info=dict(solver="two_layer", method=method, activation=act.name, gamma0=gamma0,
                lr=lr, steps=steps, n_samples=2 * ((n_samples + 1) // 2),
                damping=damping, tol=tol, W_std=w_std,
                readout_std=readout_std, dtype=str(np.dtype(dtype))))


def solve_two_layer(X, y, *, activation="relu", gamma0=1.0, lr=1.0,
                    steps=100, n_samples=4096, seed=0, X_test=None,
                    y_test=None, W_std=1.0, readout_std=1.0, damping=1.0,
                    tol=None, max_iterations=None, kernel_times=None,
                    raise_on_nonconvergence=True,
                    method="march") -> results.DMFTResult:
  """`dmft.solve` of the two-layer mup network these arguments describe.

  ``serial(Dense(N, W_std), activation, Dense(1, readout_std))`` under ``mup(gamma0)``;
  the other arguments are `dmft.solve`'s. Bordelon and Pehlevan (2022), Eqs. (5)-(7)
  in discrete time for L = 1.
  """
  from dmft import solver as solve_lib  # pylint: disable=g-import-not-at-top
  gamma0 = val.check_positive_number(gamma0, "gamma0")
  net = network.build(1, depth=1, activation=activation, gamma0=gamma0,
                      input_std=val.check_positive_number(W_std, "W_std"),
                      readout_std=val.check_positive_number(readout_std, "readout_std"))
  return solve_lib.solve(net, X, y, lr=lr, steps=steps, n_samples=n_samples, seed=seed,
                         X_test=X_test, y_test=y_test, damping=damping, tol=tol,
                         max_iterations=max_iterations, kernel_times=kernel_times,
                         raise_on_nonconvergence=raise_on_nonconvergence, method=method)
