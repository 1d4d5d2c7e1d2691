"""Predictions of trained infinitely wide networks, with neural-tangents' `predict` API.

Conventions (those of neural-tangents 0.6.5): the loss is the mean squared error
``L = 1/(2 N) |f(x_train) - y_train|^2`` with ``N = y_train.size`` (targets of
shape ``(P, k)``: ``N = P k``), so gradient descent with learning rate ``lr``
moves the outputs by ``f <- f - (lr / N) Theta (f - y)`` (Lee et al. 2019,
eq. 7-9), ``Theta`` the NTK returned by ``kernel_fn(..., "ntk")``. Times ``t``
are in units of steps: the absolute time of gradient flow is ``lr * t``.

Beyond neural-tangents, every gradient-descent prediction also exists in
discrete time: pass ``steps=`` (an integer or an array of integers) instead of
``t=`` for ``f_s - y = (I - lr Theta / N)^s (f_0 - y)``, exactly what a finite
network trained with full-batch gradient descent follows at large width.

Numerics: a train kernel (after ``diag_reg``) must be positive semi-definite, as
every NNGP and NTK is. One rule decides it everywhere in this module (finite and
infinite time, discrete steps, `gp_inference`, `gradient_descent`,
`max_learning_rate`): a kernel whose smallest eigenvalue lies below ``-sqrt(eps)``
times its largest eigenvalue magnitude (``eps`` of its dtype: 3.5e-4 in float32,
1.5e-8 in float64) is an error, a `ValueError` naming the argument; smaller
negative eigenvalues are rounding and are handled as follows. At finite times
eigenvalues are clipped at 0 as in neural-tangents and zero modes get their exact
limits, so finite-time predictions are finite for any positive semi-definite
kernel; under ``jit`` (a traced kernel) an indefinite kernel gives NaN, never
numbers. Infinite-time (``t=None``) predictions use a Cholesky factorisation; a
kernel that is not numerically positive definite gets the smallest diagonal jitter
(``eps * 10^i`` times its mean diagonal) that makes it so, with a `UserWarning`
reporting the jitter, and a `ValueError` if no jitter up to 1e-3 of the mean
diagonal helps. ``learning_rate`` must be positive. A learning rate above
`max_learning_rate` warns when discrete steps are requested.
"""
from __future__ import annotations

import collections
import functools
import warnings
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from kernels import validation

__all__ = ["Gaussian", "ODEState", "gradient_descent_mse", "gradient_descent_mse_ensemble",
           "gp_inference", "gradient_descent", "max_learning_rate"]

_GETS = ("nngp", "ntk")


class Gaussian(NamedTuple):
  """A ``(mean, covariance)`` pair (neural-tangents' `predict.Gaussian`)."""
  mean: jax.Array
  covariance: jax.Array


class ODEState(NamedTuple):
  """Outputs and auxiliary (momentum) variables of `gradient_descent`'s ODE."""
  fx_train: Optional[jax.Array] = None
  fx_test: Optional[jax.Array] = None
  qx_train: Optional[jax.Array] = None
  qx_test: Optional[jax.Array] = None


# ----------------------------------------------------------------------------
# Checks


def _check_targets(y_train, trace_axes) -> jax.Array:
  y = validation.as_float_array(y_train, "y_train")
  if y.ndim not in (1, 2) or y.shape[0] == 0:
    raise ValueError(f"y_train must have shape (P,) or (P, k) with P > 0, got {y.shape}.")
  validation.check_finite(y, "y_train")
  ta = tuple(trace_axes) if isinstance(trace_axes, (tuple, list)) else (trace_axes,)
  if y.ndim == 2 and ta not in ((-1,), (1,)):
    raise ValueError(f"trace_axes must be (-1,) (one kernel shared by the output columns), "
                     f"got {trace_axes!r}.")
  return y


def _check_square(k, name: str, p: int) -> jax.Array:
  k = validation.as_float_array(k, name)
  if k.shape != (p, p):
    raise ValueError(f"{name} must have shape ({p}, {p}) to match y_train, got {k.shape}.")
  validation.check_finite(k, name)
  return k


def _check_cross(k, name: str, p: int) -> jax.Array:
  k = validation.as_float_array(k, name)
  if k.ndim != 2 or k.shape[1] != p:
    raise ValueError(f"{name} must have shape (n_test, {p}) to match y_train, got {k.shape}.")
  validation.check_finite(k, name)
  return k


def _check_outputs(f, name: str, shape) -> jax.Array:
  f = validation.as_float_array(f, name)
  try:
    return jnp.broadcast_to(f, shape)
  except ValueError as e:
    raise ValueError(f"{name} must broadcast to shape {shape}, got {f.shape}.") from e


def _check_time(t, steps):
  """Validates ``t`` or ``steps`` (not both); returns the steps array or None."""
  if t is not None and steps is not None:
    raise ValueError("pass either t (continuous time) or steps (discrete steps), not both.")
  if steps is not None:
    s = np.asarray(steps)
    if not np.issubdtype(s.dtype, np.integer) or np.any(s < 0):
      raise ValueError(f"steps must be non-negative integers, got {steps!r}.")
    return s
  if t is not None and validation.is_concrete(t):
    tt = np.asarray(t, dtype=float)
    if np.any(np.isnan(tt)) or np.any(tt < 0):
      raise ValueError(f"t must be non-negative times, got {t!r}.")
  return None


def _check_learning_rate(learning_rate):
  """A positive finite learning rate (a traced scalar passes unchecked), else ValueError."""
  lr = validation.check_real(learning_rate, "learning_rate")
  if not validation.is_traced(lr) and not lr > 0:
    raise ValueError(f"learning_rate must be positive, got {lr}.")
  return lr


def _psd_tolerance(dtype) -> float:
  """Relative size of negative eigenvalues still taken for rounding: sqrt(eps) of the dtype."""
  return float(np.sqrt(np.finfo(dtype).eps))


def _check_psd(evals, name: str, diag_reg: bool = True) -> None:
  """ValueError naming ``name`` if the eigenvalues (concrete) are not positive semi-definite.

  Not positive semi-definite: the smallest eigenvalue is below ``-sqrt(eps)`` times
  the largest eigenvalue magnitude. Traced eigenvalues are left to `_factors`.
  """
  if not validation.is_concrete(evals):
    return
  ev = np.asarray(evals)
  lam_min, scale = float(np.min(ev)), float(np.max(np.abs(ev)))
  tol = _psd_tolerance(ev.dtype)
  if lam_min < -tol * scale:
    raise ValueError(f"{name} is not positive semi-definite: its smallest eigenvalue "
                     f"{lam_min:.3g} is below -{tol:.2g} times its largest eigenvalue "
                     f"magnitude {scale:.3g} ({ev.dtype}). NNGP and NTK kernels are positive "
                     f"semi-definite" + ("; pass diag_reg to shift the kernel." if diag_reg
                                         else "."))


# ----------------------------------------------------------------------------
# Linear algebra shared by the predictors


def _regularize(k, diag_reg, diag_reg_absolute_scale):
  """``k + diag_reg * I`` (absolute) or ``k + diag_reg * mean(diag k) * I`` (neural-tangents)."""
  n = k.shape[0]
  reg = diag_reg if diag_reg_absolute_scale else diag_reg * jnp.trace(k) / n
  return k + reg * jnp.eye(n, dtype=k.dtype)


@jax.jit
def _eigh(k):
  return jnp.linalg.eigh(k)


@jax.jit
def _cholesky(k):
  return jnp.linalg.cholesky(k)


def _cho_factor(k, name: str):
  """Lower Cholesky factor; a reported jitter if ``k`` is not numerically positive definite."""
  chol = _cholesky(k)
  if not validation.is_concrete(chol) or bool(jnp.all(jnp.isfinite(chol))):
    return chol
  _check_psd(jnp.linalg.eigvalsh(k), name)
  scale = float(jnp.mean(jnp.abs(jnp.diag(k))))
  eps = float(jnp.finfo(k.dtype).eps)
  rel = eps
  while rel <= 1e-3:
    jitter = rel * scale
    chol = _cholesky(k + jitter * jnp.eye(k.shape[0], dtype=k.dtype))
    if bool(jnp.all(jnp.isfinite(chol))):
      warnings.warn(f"{name} is not numerically positive definite in {k.dtype}; added a "
                    f"diagonal jitter of {jitter:.3g} ({rel:.1e} of its mean diagonal). Pass "
                    f"diag_reg to choose the regularisation.", UserWarning, stacklevel=3)
      return chol
    rel *= 10.0
  lam_min = float(jnp.linalg.eigvalsh(k)[0])
  raise ValueError(f"{name} is not positive definite (smallest eigenvalue {lam_min:.3g}, mean "
                   f"diagonal {scale:.3g}) and no jitter up to 1e-3 of its mean diagonal "
                   f"helps; pass a larger diag_reg.")


@jax.jit
def _cho_solve(chol, b):
  return jax.scipy.linalg.cho_solve((chol, True), b)


def _factors(evals, t_abs, n, lr, steps):
  """Per-mode decay ``d = exp(-lam t / N)`` or ``(1 - lr lam / N)^s`` and ``(1 - d) / lam``.

  Shapes ``(T, P)``. Eigenvalues are clipped at 0 as in neural-tangents; exact
  zero modes get the limit ``t / N`` (``s lr / N``) instead of 0/0. Eigenvalues of a
  kernel that is not positive semi-definite (`_check_psd`'s rule, which raises for
  concrete kernels before this) make every factor NaN: a traced kernel cannot raise.
  """
  indefinite = jnp.min(evals) < -_psd_tolerance(evals.dtype) * jnp.max(jnp.abs(evals))
  lam = jnp.maximum(evals, 0.0)[None, :]
  if steps is None:
    t = t_abs[:, None]
    one_minus = -jnp.expm1(-lam * t / n)
    limit = t / n
  else:
    s = steps[:, None]
    base = 1.0 - lr * lam / n
    safe = jnp.where(base > 0, base, 1.0)
    one_minus = jnp.where(base > 0, -jnp.expm1(s * jnp.log(safe)), 1.0 - base ** s)
    limit = s * lr / n
  absl = jnp.abs(evals)[None, :]
  inv = jnp.where(absl > 0, one_minus / jnp.where(absl > 0, absl, 1.0), limit)
  poison = lambda a: jnp.where(indefinite, jnp.nan, a)
  return poison(1.0 - one_minus), poison(one_minus), poison(inv)


def _times(t, steps, learning_rate, dtype):
  """(flattened absolute times or steps, their shape)."""
  if steps is not None:
    s = jnp.asarray(steps, dtype)
    return None, s.reshape(-1), s.shape
  t = jnp.asarray(t, dtype) * learning_rate
  return t.reshape(-1), None, t.shape


def _warn_learning_rate(evals, n, learning_rate, momentum=0.0):
  if validation.is_traced(learning_rate) or not validation.is_concrete(evals):
    return
  top = float(jnp.max(evals))
  lr_max = 2 * (1 + momentum) * n / (top + 1e-12)
  if learning_rate > lr_max:
    warnings.warn(f"learning_rate {learning_rate:.4g} is above max_learning_rate {lr_max:.4g} "
                  f"(2 N / lambda_max of the train NTK): discrete gradient descent diverges.",
                  UserWarning, stacklevel=4)


# ----------------------------------------------------------------------------
# gradient_descent_mse


def gradient_descent_mse(k_train_train, y_train, learning_rate: float = 1., diag_reg: float = 0.,
                         diag_reg_absolute_scale: bool = False, trace_axes=(-1,)):
  """Gradient descent on MSE in function space, closed form (Lee et al. 2019, eq. 8-9; Jacot et al. 2018, eq. 10).

  Returns ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None,
  *, steps=None)`` giving ``fx_train_t``, ``fx_test_t`` or both (as neural-tangents:
  ``fx_train_0=None`` skips the train set, ``fx_test_0=None`` the test set), with
  leading axes of ``t`` (or ``steps``). ``t=None`` means infinite time.
  """
  y = _check_targets(y_train, trace_axes)
  p = y.shape[0]
  k = _check_square(k_train_train, "k_train_train", p)
  lr = _check_learning_rate(learning_rate)
  reg = validation.check_nonnegative(diag_reg, "diag_reg")
  k_reg = _regularize(k, reg, diag_reg_absolute_scale)
  n = y.size

  @functools.lru_cache(1)
  def eig():
    return _eigh(k_reg)

  @functools.lru_cache(1)
  def chol():
    return _cho_factor(k_reg, "k_train_train")

  def predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None, *, steps=None):
    if fx_train_0 is None and fx_test_0 is None:
      raise ValueError("Both fx_train_0 and fx_test_0 are None: nothing to predict.")
    if fx_test_0 is not None and k_test_train is None:
      raise ValueError("k_test_train is needed for predictions on the test set (fx_test_0).")
    steps_ = _check_time(t, steps)
    f0 = None if fx_train_0 is None else _check_outputs(fx_train_0, "fx_train_0", y.shape)
    kt = g0 = None
    if fx_test_0 is not None:
      kt = _check_cross(k_test_train, "k_test_train", p).astype(k.dtype)
      g0 = _check_outputs(fx_test_0, "fx_test_0", (kt.shape[0],) + y.shape[1:])
    if t is None and steps_ is None:
      if kt is None:
        return y.astype(k.dtype)
      rhs = y if f0 is None else y - f0
      g = g0 + kt @ _cho_solve(chol(), rhs.astype(k.dtype))
      return g if f0 is None else (y.astype(k.dtype), g)
    evals, evecs = eig()
    _check_psd(evals, "k_train_train")
    if steps_ is not None:
      _warn_learning_rate(evals, n, lr)
    t_abs, s, shape = _times(t, steps_, lr, k.dtype)
    train, test = _gd_finite(evals, evecs, y, f0, kt, g0, t_abs, s, lr, n)
    reshape = lambda a: None if a is None else a.reshape(shape + a.shape[1:])
    train, test = reshape(train), reshape(test)
    if train is not None and test is not None:
      return train, test
    return test if train is None else train

  return predict_fn


@functools.partial(jax.jit, static_argnames=("n",))
def _gd_finite(evals, evecs, y, f0, kt, g0, t_abs, s, lr, n):
  decay, _, inv = _factors(evals, t_abs, n, lr, s)
  r = (-y if f0 is None else f0 - y).astype(evecs.dtype)
  r2 = r.reshape(r.shape[0], -1)
  c = evecs.T @ r2  # (P, k) in the eigenbasis
  train = test = None
  if f0 is not None:
    df = jnp.einsum("ji,ti,ik->tjk", evecs, -(1.0 - decay), c,
                    precision=jax.lax.Precision.HIGHEST)
    train = f0[None] + df.reshape(df.shape[:2] + y.shape[1:])
  if kt is not None:
    a = kt @ evecs
    dg = jnp.einsum("qi,ti,ik->tqk", a, -inv, c, precision=jax.lax.Precision.HIGHEST)
    test = g0[None] + dg.reshape(dg.shape[:2] + y.shape[1:])
  return train, test


# ----------------------------------------------------------------------------
# gp_inference


def _attr(k, g):
  if isinstance(k, (np.ndarray, jax.Array)):
    return k
  v = getattr(k, g, None)
  if v is None:
    raise ValueError(f"the kernel passed has no {g!r} entry; compute it with get including "
                     f"{g!r}.")
  return v


def _canonical_get(get, allowed):
  if get is None:
    return ("nngp", "ntk"), False, True
  single = isinstance(get, str)
  gets = (get,) if single else tuple(get)
  for g in gets:
    if g not in allowed:
      raise ValueError(f"get must name predictions among {allowed}, got {g!r}.")
  if not gets:
    raise ValueError("get must name at least one prediction.")
  return gets, single, False


def _pack(out: dict, gets, single):
  if single:
    return out[gets[0]]
  return collections.namedtuple("Gaussians", gets)(*(out[g] for g in gets))


def gp_inference(k_train_train, y_train, diag_reg: float = 0., diag_reg_absolute_scale: bool = False,
                 trace_axes=(-1,)):
  """Posterior of the NNGP, NTK or NTKGP Gaussian process (Lee et al. 2019, eq. 13-16; He et al. 2020 for NTKGP).

  ``k_train_train`` is an array or a named tuple with ``nngp``/``ntk``. Returns
  ``predict_fn(get=None, k_test_train=None, k_test_test=None)``: means, or
  `Gaussian` pairs when ``k_test_test`` is given, for ``get`` among "nngp",
  "ntk", "ntkgp". The NTK covariance needs the NNGP and the NTK in both kernels.
  """
  y = _check_targets(y_train, trace_axes)
  p = y.shape[0]
  reg = validation.check_nonnegative(diag_reg, "diag_reg")

  if isinstance(k_train_train, (np.ndarray, jax.Array)):
    _check_square(k_train_train, "k_train_train", p)
  else:
    for g in _GETS:
      if getattr(k_train_train, g, None) is not None:
        _check_square(getattr(k_train_train, g), f"k_train_train.{g}", p)

  def kernel_name(g):  # a plain array is named as passed
    return ("k_train_train" if isinstance(k_train_train, (np.ndarray, jax.Array))
            else f"k_train_train.{g}")

  def train_kernel(g):
    return _check_square(_attr(k_train_train, g), kernel_name(g), p)

  @functools.lru_cache(2)
  def chol(g):
    k = train_kernel(g)
    return _cho_factor(_regularize(k, reg, diag_reg_absolute_scale), kernel_name(g))

  @functools.lru_cache(2)
  def k_inv_y(g):
    return _cho_solve(chol(g), y.astype(train_kernel(g).dtype))

  def predict_fn(get=None, k_test_train=None, k_test_test=None):
    gets, single, _ = _canonical_get(get, ("nngp", "ntk", "ntkgp"))
    out = {}
    for g in gets:
      kk = "ntk" if g == "ntkgp" else g
      k_dd = train_kernel(kk)
      if k_test_train is None:
        mean = y.astype(k_dd.dtype)
        out[g] = mean if k_test_test is None else Gaussian(mean, jnp.zeros_like(k_dd))
        continue
      k_td = _check_cross(_attr(k_test_train, kk), f"k_test_train.{kk}", p)
      mean = k_td @ k_inv_y(kk)
      if k_test_test is None:
        out[g] = mean
        continue
      g_init = "ntk" if g == "ntkgp" else "nngp"
      k_tt = validation.as_float_array(_attr(k_test_test, g_init), f"k_test_test.{g_init}")
      if k_tt.shape != (k_td.shape[0],) * 2:
        raise ValueError(f"k_test_test must have shape {(k_td.shape[0],) * 2}, got {k_tt.shape}.")
      k_td_init = _check_cross(_attr(k_test_train, g_init), f"k_test_train.{g_init}", p)
      solved_init = _cho_solve(chol(kk), k_td_init.T)  # K_dd^-1 K_dt(init)
      if g in ("nngp", "ntkgp"):
        cov = k_tt - k_td @ solved_init
      else:
        term_1 = _cho_solve(chol("ntk"), k_td.T)  # Theta^-1 Theta_dt
        cov = term_1.T @ (train_kernel("nngp") @ term_1)
        term_2 = k_td @ solved_init
        cov = cov - term_2 - term_2.T + k_tt
      out[g] = Gaussian(mean, cov)
    return _pack(out, gets, single)

  return predict_fn


# ----------------------------------------------------------------------------
# gradient_descent_mse_ensemble


def gradient_descent_mse_ensemble(kernel_fn, x_train, y_train, learning_rate: float = 1.,
                                  diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False,
                                  trace_axes=(-1,), **kernel_fn_train_train_kwargs):
  """Mean and covariance of an infinite ensemble of infinite-width networks trained by GD on MSE (Lee et al. 2019, eq. 15-16).

  Returns ``predict_fn(t=None, x_test=None, get=None, compute_cov=False, *,
  steps=None, **kernel_fn_test_test_kwargs)``: for each of ``get`` ("nngp",
  "ntk"), the mean (or `Gaussian` with ``compute_cov``) of the outputs on
  ``x_test`` (the train set if None) at times ``t`` (or discrete ``steps``).
  """
  y = _check_targets(y_train, trace_axes)
  p = y.shape[0]
  if getattr(x_train, "shape", (p,))[0] != p:
    raise ValueError(f"x_train must have {p} points to match y_train, got shape "
                     f"{jnp.shape(x_train)}.")
  lr = _check_learning_rate(learning_rate)
  reg = validation.check_nonnegative(diag_reg, "diag_reg")
  n = y.size
  cache = {}

  def k_dd(g):
    if g not in cache:
      k = kernel_fn(x_train, None, g, **kernel_fn_train_train_kwargs)
      cache[g] = _check_square(k, f"kernel_fn(x_train, None, {g!r})", p)
    return cache[g]

  def k_dd_many(gets):
    missing = tuple(g for g in _GETS if g in gets and g not in cache)
    if len(missing) == 2:
      ks = kernel_fn(x_train, None, missing, **kernel_fn_train_train_kwargs)
      for g in missing:
        cache[g] = _check_square(getattr(ks, g), f"kernel_fn(x_train, None, {g!r})", p)
    return {g: k_dd(g) for g in gets}

  @functools.lru_cache(2)
  def eig(g):
    return _eigh(_regularize(k_dd(g), reg, diag_reg_absolute_scale))

  @functools.lru_cache(4)
  def inference(gets):
    ks = k_dd_many(gets)
    kt = collections.namedtuple("Kernel", tuple(ks))(**ks)
    return gp_inference(kt, y, reg, diag_reg_absolute_scale)

  def predict_fn(t=None, x_test=None, get=None, compute_cov: bool = False, *, steps=None,
                 **kernel_fn_test_test_kwargs):
    gets, single, _ = _canonical_get(get, _GETS)
    steps_ = _check_time(t, steps)
    need = tuple(g for g in _GETS if g in gets or (g == "nngp" and compute_cov))
    kd = k_dd_many(need)
    dtype = kd[need[0]].dtype
    k_td = nngp_tt = None
    if x_test is not None:
      kwargs = dict(kernel_fn_train_train_kwargs, **kernel_fn_test_test_kwargs)
      kt = kernel_fn(x_test, x_train, need, **kwargs)
      k_td = {g: _check_cross(getattr(kt, g), f"kernel_fn(x_test, x_train, {g!r})", p)
              for g in need}
      if compute_cov:
        nngp_tt = validation.as_float_array(kernel_fn(x_test, None, "nngp", **kwargs),
                                            "kernel_fn(x_test, None, 'nngp')")
    if t is None and steps_ is None:
      tup = lambda d: None if d is None else collections.namedtuple("Kernel", need)(
          **{g: d[g] for g in need})
      out = inference(need)(get=gets[0] if single else gets, k_test_train=tup(k_td),
                            k_test_test=(nngp_tt if x_test is not None else True)
                            if compute_cov else None)
      return out
    t_abs, s, shape = _times(t, steps_, lr, dtype)
    out = {}
    for g in gets:
      evals, evecs = eig(g)
      _check_psd(evals, f"kernel_fn(x_train, None, {g!r})")
      if steps_ is not None and g == "ntk":
        _warn_learning_rate(evals, n, lr)
      res = _ensemble(g, evals, evecs, y.astype(dtype), kd.get("nngp"),
                      None if k_td is None else k_td[g],
                      None if k_td is None else k_td.get("nngp"), nngp_tt, t_abs, s, lr, n,
                      compute_cov)
      mean = res[0].reshape(shape + res[0].shape[1:])
      out[g] = mean if not compute_cov else Gaussian(
          mean, res[1].reshape(shape + res[1].shape[1:]))
    return _pack(out, gets, single)

  return predict_fn


@functools.partial(jax.jit, static_argnames=("g", "n", "compute_cov"))
def _ensemble(g, evals, evecs, y, nngp_dd, k_td, nngp_td, nngp_tt, t_abs, s, lr, n, compute_cov):
  hp = jax.lax.Precision.HIGHEST
  decay, one_minus, inv = _factors(evals, t_abs, n, lr, s)
  y2 = y.reshape(y.shape[0], -1)
  c = evecs.T @ y2
  if k_td is None:
    mean = jnp.einsum("ji,ti,ik->tjk", evecs, one_minus, c, precision=hp)
  else:
    a = k_td @ evecs  # (Q, P)
    mean = jnp.einsum("qi,ti,ik->tqk", a, inv, c, precision=hp)
  mean = mean.reshape(mean.shape[:2] + y.shape[1:])
  if not compute_cov:
    return mean, None
  lam = jnp.maximum(evals, 0.0)[None, :]
  if k_td is None:
    if g == "nngp":
      cov = jnp.einsum("ji,ti,ki->tjk", evecs, lam * decay ** 2, evecs, precision=hp)
    else:
      e = jnp.einsum("mi,ti,ki->tmk", evecs, decay, evecs, precision=hp)
      cov = jnp.einsum("tmk,kl,tnl->tmn", e, nngp_dd, e, precision=hp)
  else:
    if g == "nngp":
      # (1 - d^2) / lam: the same factor at twice the time (or twice the steps).
      _, _, inv2 = _factors(evals, None if t_abs is None else 2 * t_abs, n, lr,
                            None if s is None else 2 * s)
      cov = nngp_tt[None] - jnp.einsum("qi,ti,ri->tqr", a, inv2, a, precision=hp)
    else:
      m = evecs.T @ nngp_dd @ evecs  # NNGP in the NTK eigenbasis
      ah = a[None] * inv[:, None, :]  # (T, Q, P): Theta_td Theta^-1 (1 - e^{-Theta t}) in the basis
      b = nngp_td @ evecs
      term_2 = jnp.einsum("tqi,ri->tqr", ah, b, precision=hp)
      cov = (jnp.einsum("tqi,ij,trj->tqr", ah, m, ah, precision=hp)
             - term_2 - jnp.swapaxes(term_2, 1, 2) + nngp_tt[None])
  return mean, cov


# ----------------------------------------------------------------------------
# gradient_descent (any loss, momentum) by ODE integration


def gradient_descent(loss: Callable, k_train_train, y_train, learning_rate: float = 1.,
                     momentum: Optional[float] = None, trace_axes=(-1,), *, rtol: Optional[float] = None,
                     atol: Optional[float] = None, max_steps: int = 100_000):
  """Function-space gradient flow (with momentum) on any loss, integrated with diffrax (Lee et al. 2019, eq. 5-6).

  ``loss(fx_train, y_train)`` is a scalar. Returns ``predict_fn(t=None,
  fx_train_or_state_0=0., fx_test_0=None, k_test_train=None)`` with
  neural-tangents' semantics: ``t`` increasing times in units of steps
  (``absolute_time = lr * t``; with momentum ``sqrt(lr) * t``); an `ODEState` in,
  an `ODEState` out. ``t=None`` integrates to a steady state. Tolerances default
  to 1e-10 (float64) and 1e-6 (float32), relative and absolute.
  """
  import diffrax  # pylint: disable=g-import-not-at-top

  y = _check_targets(y_train, trace_axes)
  p = y.shape[0]
  k = _check_square(k_train_train, "k_train_train", p)
  lr = _check_learning_rate(learning_rate)
  if validation.is_concrete(k):
    _check_psd(np.linalg.eigvalsh(np.asarray(k)), "k_train_train", diag_reg=False)
  dtype = k.dtype
  y = y.astype(dtype)
  grad_loss = jax.grad(lambda fx: loss(fx, y))
  if momentum is not None:
    momentum = validation.check_real(momentum, "momentum")
    lr = lr ** 0.5
    friction = (momentum - 1.0) / lr
  tol = 1e-10 if dtype == jnp.float64 else 1e-6
  rtol = tol if rtol is None else rtol
  atol = tol if atol is None else atol

  def vector_field(_, state, kt):
    fx_train, fx_test, qx_train, qx_test = state
    g = grad_loss(fx_train)
    d_train = -(k @ g.reshape(p, -1)).reshape(g.shape)
    d_test = None if fx_test is None else -(kt @ g.reshape(p, -1)).reshape(fx_test.shape)
    if momentum is None:
      return ODEState(d_train, d_test)
    d_train = d_train + friction * qx_train
    d_test = None if qx_test is None else d_test + friction * qx_test
    return ODEState(qx_train, qx_test, d_train, d_test)

  @jax.jit
  def solve(state0, ts, kt):
    term = diffrax.ODETerm(vector_field)
    ctrl = diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, ts[-1], None, state0, args=kt,
                              saveat=diffrax.SaveAt(ts=ts), stepsize_controller=ctrl,
                              max_steps=max_steps)
    return sol.ys

  @jax.jit
  def solve_steady(state0, kt):
    term = diffrax.ODETerm(vector_field)
    ctrl = diffrax.PIDController(rtol=rtol, atol=atol)
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, jnp.inf, None, state0, args=kt,
                              saveat=diffrax.SaveAt(t1=True), stepsize_controller=ctrl,
                              event=diffrax.Event(diffrax.steady_state_event()),
                              max_steps=max_steps)
    return jax.tree_util.tree_map(lambda a: a[0], sol.ys)

  def predict_fn(t=None, fx_train_or_state_0=0., fx_test_0=None, k_test_train=None):
    is_state = isinstance(fx_train_or_state_0, ODEState)
    if is_state:
      if fx_test_0 is not None:
        raise ValueError("fx_test_0 is part of the ODEState and must be None.")
      f0, g0, q0, qt0 = fx_train_or_state_0
    else:
      f0, g0, q0, qt0 = fx_train_or_state_0, fx_test_0, None, None
    if f0 is None and g0 is None:
      raise ValueError("Both fx_train_0 and fx_test_0 are None: nothing to predict.")
    if g0 is not None and k_test_train is None:
      raise ValueError("k_test_train is needed for predictions on the test set (fx_test_0).")
    kt = None if k_test_train is None else _check_cross(k_test_train, "k_test_train",
                                                        p).astype(dtype)
    test_shape = None if kt is None else (kt.shape[0],) + y.shape[1:]
    f0_arr = jnp.zeros_like(y) if f0 is None else _check_outputs(f0, "fx_train_0", y.shape)
    g0_arr = None if g0 is None else _check_outputs(g0, "fx_test_0", test_shape).astype(dtype)
    if momentum is None:
      if q0 is not None or qt0 is not None:
        raise ValueError("momentum state variables were passed while momentum is None.")
      state0 = ODEState(f0_arr.astype(dtype), g0_arr)
    else:
      q0 = jnp.zeros_like(y) if q0 is None else _check_outputs(q0, "qx_train", y.shape)
      qt0 = None if g0_arr is None else (jnp.zeros(test_shape, dtype) if qt0 is None else
                                          _check_outputs(qt0, "qx_test", test_shape))
      state0 = ODEState(f0_arr.astype(dtype), g0_arr, q0.astype(dtype),
                        None if qt0 is None else qt0.astype(dtype))
    if t is None:
      out = solve_steady(state0, kt)
    else:
      tt = jnp.asarray(t, dtype) * lr
      shape = tt.shape
      flat = tt.reshape(-1)
      if validation.is_concrete(flat):
        fl = np.asarray(flat)
        if np.any(fl < 0) or np.any(np.diff(fl) <= 0) and fl.size > 1:
          raise ValueError(f"t must be non-negative and strictly increasing, got {t!r}.")
      ys = solve(state0, flat, kt)
      out = jax.tree_util.tree_map(lambda a: a.reshape(shape + a.shape[1:]), ys)
    if is_state:
      return out
    if f0 is not None and g0 is None:
      return out.fx_train
    if g0 is not None and f0 is None:
      return out.fx_test
    return out.fx_train, out.fx_test

  return predict_fn


# ----------------------------------------------------------------------------
# max_learning_rate


def max_learning_rate(ntk_train_train, y_train_size: Optional[int] = None, momentum=0.,
                      eps: float = 1e-12) -> float:
  """Largest stable learning rate of GD (+ momentum) on MSE, ``2 (1 + momentum) N / lambda_max`` (Lee et al. 2019, Sec. 2.4; Goh 2017 for momentum).

  ``N = y_train_size`` (default: the number of rows of the kernel). The top
  eigenvalue comes from SciPy's ``eigvalsh(subset_by_index=...)``. A kernel that is
  not positive semi-definite (the module's rule) is a ValueError naming
  ``ntk_train_train``.
  """
  import scipy.linalg  # pylint: disable=g-import-not-at-top
  k = np.asarray(validation.as_float_array(ntk_train_train, "ntk_train_train"))
  if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] == 0:
    raise ValueError(f"ntk_train_train must be a square matrix, got shape {k.shape}.")
  if not np.all(np.isfinite(k)):
    raise ValueError("ntk_train_train contains NaN or inf.")
  factor = k.shape[0] if y_train_size is None else validation.check_positive_int(
      y_train_size, "y_train_size")
  momentum = validation.check_nonnegative(momentum, "momentum")
  top = scipy.linalg.eigvalsh(k, subset_by_index=(k.shape[0] - 1, k.shape[0] - 1))[-1]
  bottom = scipy.linalg.eigvalsh(k, subset_by_index=(0, 0))[0]
  _check_psd(np.array([bottom, top], k.dtype), "ntk_train_train", diag_reg=False)
  return float(2 * (1 + momentum) * factor / (top + eps))
