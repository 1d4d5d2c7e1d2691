"""Elementwise nonlinearities and their exact dual kernels.

Each activation ``phi`` maps a Gaussian kernel (q11, q12, q22) to
``E[phi(u) phi(v)]`` and, for the NTK, ``E[phi'(u) phi'(v)]`` with
``(u, v) ~ N(0, [[q11, q12], [q12, q22]])`` (Lee et al. 2018, eq. 4; Jacot et al. 2018, Thm. 1).
Closed forms where they exist; Gauss-Hermite quadrature for any other function.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from kernels import validation
from kernels.kernel import Requirements
from kernels.stax import spatial_ops
from kernels.stax.layer import Layer, is_static

_PI = math.pi


class Elementwise(Layer):
  """Base of activations: subclasses define ``fn`` and ``dual``.

  A closed-form ``dual`` is written symmetric in its two arguments to the bit
  (``q11`` and ``q22`` enter through sums and products of the pair only), so that the
  kernel of a batch with itself is exactly symmetric with no extra pass;
  ``symmetric_dual = False`` marks one that is not (a quadrature), and the network's
  output is then symmetrised.
  """
  name = "Elementwise"
  _nonlinear = True
  symmetric_dual = True
  _fast_path = True
  requirements = Requirements(gaussian=True)

  def fn(self, x):
    raise NotImplementedError

  def point_factors(self, q):
    """Per-point vectors of the variance ``q`` that ``dual`` reads (default: none).

    Computed once per point in the diagonal pass and passed to the (n1, n2) pass as
    inputs: the compiler would otherwise recompute them for every entry.
    """
    del q
    return ()

  def dual(self, q11, q12, q22, need_dot: bool, f1=None, f2=None):
    """Returns (E[phi(u)phi(v)], E[phi'(u)phi'(v)] or None) for broadcastable q's.

    ``f1``, ``f2``: `point_factors` of q11 and q22, broadcast like them (computed
    here when None).
    """
    raise NotImplementedError

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    return self.fn(x)

  def _kernel(self, k, path, ctx):
    if isinstance(k, list):
      raise ValueError(f"{self.name} expects a single input, got a list of branches.")
    if not k.is_gaussian:
      raise ValueError(f"{self.name} has a kernel only on Gaussian pre-activations: put a Dense "
                       "layer before it (its input is the raw data or another nonlinearity).")
    if k.mask1 is not None:
      return self._kernel_masked(k, path, ctx)
    if k.spatial:
      return self._kernel_spatial(k)
    if k.diagonal:  # vectors only: input variances, output variances, dots, factors
      side = _side_compiled if is_static(self) else Elementwise._side
      side1 = side(self, k.cov1)
      side2 = side1 if k.x1_is_x2 else side(self, k.cov2)
      covs = dict(k.covs or {})
      covs[path] = (side1, side2)
      return k.replace(nngp=side1[1], cov1=side1[1], cov2=side2[1], covs=covs,
                       is_gaussian=False)
    if k.covs and path in k.covs:
      # Read, not recomputed: the compiler would otherwise redo this vector work
      # inside the (n1, n2) loop, once per entry.
      (q1, cov1, dot1, f1), (q2, cov2, _, f2) = k.covs[path]
    else:
      (q1, cov1, dot1, f1) = self._side(k.cov1)
      (q2, cov2, _, f2) = (q1, cov1, dot1, f1) if k.x1_is_x2 else self._side(k.cov2)
    need_dot = k.ntk is not None
    nngp, dot = self.dual(q1[:, None], snap_correlation(q1, k.nngp, q2), q2[None, :], need_dot,
                          tuple(f[:, None] for f in f1), tuple(f[None, :] for f in f2))
    same = k.same_inputs()
    if same is not None:
      # One input twice has correlation exactly 1: the diagonal formulas there
      # (rounding of ulp size would otherwise be amplified by the square roots and,
      # in the chaotic phase, by depth).
      nngp = jnp.where(same, cov1[:, None], nngp)
      dot = None if dot is None else jnp.where(same, dot1[:, None], dot)
    ntk = None if k.ntk is None else k.ntk * dot
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)

  def _supports_mask(self):
    return True

  def _kernel_masked(self, k, path, ctx):
    """The kernel of masked inputs: the dual, then zero at every pair with a masked
    member. neural-tangents zeroes them after most nonlinearities; this does after all,
    so a nonlinearity with ``phi(0) != 0`` (e.g. a Polynomial with a constant term) agrees
    with the finite network, whose next layer reads masked entries as zero."""
    inner = k.replace(mask1=None, mask2=None)
    out = self._kernel_spatial(inner) if k.spatial else self._kernel(inner, path, ctx)
    return out.replace(mask1=k.mask1, mask2=k.mask2).remask()

  def _kernel_spatial(self, k):
    """The dual at every pair of positions: ``q11`` and ``q22`` are the variances at
    each pair's two positions (Novak et al. 2019, eq. 7; neural-tangents' layout)."""
    n_sp, full = len(k.spatial), not k.diagonal_spatial
    q1 = spatial_ops.variances(k.cov1, n_sp, full)
    q2 = q1 if k.x1_is_x2 else spatial_ops.variances(k.cov2, n_sp, full)

    def apply(q_left, q12, q_right, need_dot):
      norm = safe_sqrt(q_left) * safe_sqrt(q_right)
      snap = 1.0 - 4 * float(jnp.finfo(jnp.result_type(q12)).eps)
      q12 = jnp.where(jnp.abs(q12) > snap * norm, jnp.sign(q12) * norm, q12)
      return self.dual(q_left, q12, q_right, need_dot)

    e = spatial_ops.expand
    nngp, dot = apply(e(q1, 2, 0, n_sp, full, 0), k.nngp, e(q2, 2, 1, n_sp, full, 1),
                      k.ntk is not None)

    def side(q, cov):
      if full:
        return apply(e(q, 1, 0, n_sp, True, 0), cov, e(q, 1, 0, n_sp, True, 1), False)[0]
      return apply(q, q, q, False)[0]

    cov1 = side(q1, k.cov1)
    cov2 = cov1 if k.x1_is_x2 else side(q2, k.cov2)
    ntk = None if k.ntk is None else k.ntk * dot
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)

  def _side(self, q):
    """(q, output variance, derivative moment, point factors) of points with variance q."""
    f = self.point_factors(q)
    return (q,) + self.dual(q, q, q, True, f, f) + (f,)


@functools.partial(jax.jit, static_argnums=0)
def _side_compiled(layer: Elementwise, q):
  """`Elementwise._side` as one compiled program per activation (and shape of q).

  The diagonal pass runs op by op (its compile time would grow with depth); this keeps
  its per-layer cost one dispatch instead of the hundreds of small operations of a
  dual, which dominated a call on a few hundred points (e.g. each tile of
  `kernels.batch`: 40 ms of 50 for a depth-5 ReLU tile of 500 points)."""
  return layer._side(q)  # pylint: disable=protected-access


# ----------------------------------------------------------------------------
# Angles and square roots that stay finite at correlation +-1 and at zero inputs.


@jax.custom_jvp
def safe_sqrt(x):
  """sqrt(max(x, 0)) whose derivative is 0, not inf or NaN, where x <= 0."""
  return jnp.sqrt(jnp.maximum(x, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
  (x,), (t,) = primals, tangents
  y = safe_sqrt(x)
  pos = y > 0
  return y, jnp.where(pos, t / (2 * jnp.where(pos, y, 1.0)), 0.0)


# arccos(x) = sqrt(1 - x) p(x) on [0, 1], |error| <= 2e-8 (Abramowitz & Stegun 4.4.46).
_ACOS_COEFFS = (1.5707963050, -0.2145988016, 0.0889789874, -0.0501743046,
                0.0308918810, -0.0170881256, 0.0066700901, -0.0012624911)


def _acos_f32(rho):
  a = jnp.abs(rho)
  p = _ACOS_COEFFS[-1]
  for c in _ACOS_COEFFS[-2::-1]:
    p = p * a + c
  t = safe_sqrt(1.0 - a) * p
  return jnp.where(rho >= 0, t, _PI - t)


# arcsin(x) = x + x^3 P(x^2) on [0, 1/sqrt(2)]: a degree-7 least-squares Chebyshev fit in
# x^2, relative error 7.5e-8 with float32 arithmetic (Horner's rule), no square root.
_ASIN_COEFFS = (0.1666666567325592, 0.0750020295381546, 0.04455689340829849,
                0.031746961176395416, 0.011971993371844292, 0.05887087807059288,
                -0.07196279615163803, 0.0899345874786377)


def _asin_small(v):
  """arcsin(v) for 0 <= v <= 1/sqrt(2), from multiplies only."""
  z = v * v
  p = _ASIN_COEFFS[-1]
  for c in _ASIN_COEFFS[-2::-1]:
    p = p * z + c
  return p * z * v + v


def asin_f32(sin, cos_sq, cos=None):
  """arcsin(sin) given also cos_sq = 1 - sin^2 >= 0 (and optionally its square root ``cos``),
  by polynomials: no atan2, no division.

  The polynomial is evaluated at the smaller of |sin| and cos (at most 1/sqrt(2)), so the
  angle is as accurate as the better-known of the two: near correlation 1 the cosine,
  computed from a determinant without cancellation (`gram_det`). XLA's CPU ``atan2``
  and ``asin`` do not vectorise; this does, and fuses into the (n1, n2) loop: each
  square root has one use (XLA's CPU compiler does not fuse an expensive operation
  with several uses, and materialises it instead).
  """
  a = jnp.abs(sin)
  near = a * a <= cos_sq
  t = _asin_small(jnp.where(near, a, safe_sqrt(cos_sq) if cos is None else cos))
  return jnp.sign(sin) * jnp.where(near, t, _PI / 2 - t)


def scaled_gram_det(q11, q12, q22, scale, norm):
  """``scale^2 (q11 q22 - q12^2) >= 0`` from differences (see `gram_det`), with ``norm`` =
  ``sqrt(q11) sqrt(q22)`` given (products of per-point vectors, no square root per entry)."""
  d1, d2, c = (q11 - q12) * scale, (q22 - q12) * scale, q12 * scale
  det = jnp.maximum(d1 * d2 + c * (d1 + d2), 0.0)
  return jnp.where(jnp.abs(q12) >= norm, 0.0, det)


def is_float64(x) -> bool:
  return jnp.result_type(x) == jnp.float64


def gram_det(q11, q12, q22):
  """q11 q22 - q12^2 >= 0 from differences (no cancellation near correlation 1).

  Exactly 0 where ``|q12| >= sqrt(q11) sqrt(q22)``, e.g. after `snap_correlation`.
  """
  d1, d2 = q11 - q12, q22 - q12
  det = jnp.maximum(d1 * d2 + q12 * (d1 + d2), 0.0)
  return jnp.where(jnp.abs(q12) >= safe_sqrt(q11) * safe_sqrt(q22), 0.0, det)


def rsqrt_shifted_det(u11, u12, u22):
  """``1 / sqrt((1 + u11)(1 + u22) - u12^2)`` without overflow or cancellation.

  The determinant is ``1 + u11 + u22 + det(u)`` (`gram_det`, no cancellation near
  correlation 1), evaluated at the scale ``m = sqrt(max(1, u11) max(1, u22))`` so that
  no intermediate exceeds the range of the dtype where the result is representable.
  """
  inv_m = jax.lax.rsqrt(jnp.maximum(u11, 1.0)) * jax.lax.rsqrt(jnp.maximum(u22, 1.0))
  t = (1 + (u11 + u22)) * inv_m * inv_m + gram_det(u11 * inv_m, u12 * inv_m, u22 * inv_m)
  return jax.lax.rsqrt(t) * inv_m


def correlation_angle(q11, q12, q22):
  """Returns (theta, sqrt(q11 q22 - q12^2)): the angle between the two Gaussians.

  theta = pi/2 where a variance is 0. In float64 the angle is atan2 of the exact
  expressions (theta = 0 exactly for identical inputs); in float32 a vectorisable
  polynomial arccos of the clipped correlation, accurate to float32 rounding.
  """
  if jnp.result_type(q12) == jnp.float64:
    cross = safe_sqrt(gram_det(q11, q12, q22))
    both_zero = (cross == 0) & (q12 == 0)
    theta = jnp.where(both_zero, _PI / 2, jnp.arctan2(cross, jnp.where(both_zero, 1.0, q12)))
    return theta, cross
  # The same norm as snap_correlation's. Square roots and reciprocals are of the
  # (n1, 1) and (1, n2) variances; per entry there are multiplies and two square
  # roots, and no division, so the compiler fuses the whole network into one loop.
  s1, s2 = safe_sqrt(q11), safe_sqrt(q22)
  inv1 = jnp.where(s1 > 0, 1.0 / jnp.where(s1 > 0, s1, 1.0), 0.0)
  inv2 = jnp.where(s2 > 0, 1.0 / jnp.where(s2 > 0, s2, 1.0), 0.0)
  rho = jnp.clip(q12 * (inv1 * inv2), -1.0, 1.0)
  rho = jnp.where(jnp.abs(rho) > 1.0 - 4 * float(jnp.finfo(rho.dtype).eps), jnp.sign(rho), rho)
  theta = _acos_f32(rho)
  return theta, (s1 * s2) * safe_sqrt(1.0 - rho * rho)


def snap_correlation(q1, q12, q2):
  """Sets covariances whose correlation is within rounding of +-1 to exactly +-sqrt(q1 q2).

  Two copies of one input then have correlation exactly 1, as in exact arithmetic;
  otherwise rounding leaves 1 - eps, an angle of sqrt(2 eps) (5e-4 in float32) that
  deep networks amplify (exponentially so in the chaotic phase, e.g. deep Erf).
  """
  norm = safe_sqrt(q1)[:, None] * safe_sqrt(q2)[None, :]
  snap = 1.0 - 4 * float(jnp.finfo(jnp.result_type(q12)).eps)
  return jnp.where(jnp.abs(q12) > snap * norm, jnp.sign(q12) * norm, q12)


@dataclasses.dataclass(frozen=True)
class ABRelu(Elementwise):
  """ABRelu(a, b): ``a min(x, 0) + b max(x, 0)``; arc-cosine kernel (Cho & Saul 2009, eq. 6; Tsuchida et al. 2018).

  ``do_stabilize``: neural-tangents' switch that rescales covariances in very deep
  networks; accepted and without effect here, where the dual is always computed in the
  stable form (`correlation_angle`; float32 within 7e-6 of float64 at depth 30).
  """
  a: float
  b: float
  do_stabilize: bool = dataclasses.field(default=False, compare=False)
  name = "ABRelu"

  def __post_init__(self):
    object.__setattr__(self, "a", validation.check_real(self.a, "a"))
    object.__setattr__(self, "b", validation.check_real(self.b, "b"))
    if not isinstance(self.do_stabilize, bool):
      raise TypeError(f"do_stabilize must be True or False, got {self.do_stabilize!r}.")

  def fn(self, x):
    return self.a * jnp.minimum(x, 0) + self.b * jnp.maximum(x, 0)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    theta, cross = correlation_angle(q11, q12, q22)
    c = (self.a - self.b) ** 2 / (2 * _PI)
    dot = (self.a ** 2 + self.b ** 2) / 2 - c * theta
    return c * cross + dot * q12, (dot if need_dot else None)


def Relu(do_stabilize: bool = False) -> ABRelu:  # pylint: disable=invalid-name
  """ReLU, ``max(x, 0)``."""
  return ABRelu(0.0, 1.0, do_stabilize)


def LeakyRelu(alpha: float, do_stabilize: bool = False) -> ABRelu:  # pylint: disable=invalid-name
  """Leaky ReLU, ``alpha min(x, 0) + max(x, 0)``."""
  return ABRelu(validation.check_real(alpha, "alpha"), 1.0, do_stabilize)


def Abs(do_stabilize: bool = False) -> ABRelu:  # pylint: disable=invalid-name
  """Absolute value."""
  return ABRelu(-1.0, 1.0, do_stabilize)


@dataclasses.dataclass(frozen=True)
class Erf(Elementwise):
  """Erf(a, b, c): ``a erf(b x) + c``; arcsine kernel (Williams 1997, eq. 11)."""
  a: float = 1.0
  b: float = 1.0
  c: float = 0.0
  name = "Erf"

  def __post_init__(self):
    for field in ("a", "b", "c"):
      object.__setattr__(self, field, validation.check_real(getattr(self, field), field))

  def fn(self, x):
    return self.a * jax.scipy.special.erf(self.b * x) + self.c

  def point_factors(self, q):
    # 1 / sqrt(1 + u q), and sqrt(q) (the norm of `scaled_gram_det`)
    return (jax.lax.rsqrt(1 + 2 * self.b ** 2 * q), safe_sqrt(q))

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    u = 2 * self.b ** 2  # (u11, u12, u22) = u q: the arcsine kernel's argument
    (r1, s1), (r2, s2) = (self.point_factors(q11) if f1 is None else f1,
                          self.point_factors(q22) if f2 is None else f2)
    r = r1 * r2  # 1 / sqrt((1 + u11)(1 + u22)), no product that overflows
    if is_float64(q12):
      arg = jnp.clip(u * q12 * r, -1.0, 1.0)
      nngp = self.a ** 2 * (2 / _PI) * jnp.arcsin(arg) + self.c ** 2
      dot = None
      if need_dot:
        # 1 / sqrt((1 + u11)(1 + u22) - u12^2) = r / sqrt(t), t the determinant at scale r^2
        # (1 + u11 + u22 + det(u), `gram_det`: no cancellation near correlation 1).
        u11, u12, u22 = u * q11 * r, u * q12 * r, u * q22 * r
        t = (1 + (u * q11 + u * q22)) * (r * r) + gram_det(u11, u12, u22)
        dot = self.a ** 2 * self.b ** 2 * (4 / _PI) * r * jax.lax.rsqrt(t)
      return nngp, dot
    # float32: t = 1 - arg^2 as above, its square root the cosine of the arcsine's angle;
    # per entry multiplies, a sqrt and an rsqrt (one use each: see `asin_f32`), no
    # division or atan2, so that the network is one fused loop.
    t = (1 + (u * q11 + u * q22)) * (r * r) + scaled_gram_det(q11, q12, q22, u * r, s1 * s2)
    arg = jnp.clip(u * q12 * r, -1.0, 1.0)
    nngp = self.a ** 2 * (2 / _PI) * asin_f32(arg, t) + self.c ** 2
    dot = self.a ** 2 * self.b ** 2 * (4 / _PI) * r * jax.lax.rsqrt(t) if need_dot else None
    return nngp, dot


@dataclasses.dataclass(frozen=True)
class Gelu(Elementwise):
  """Gelu, ``x Phi(x)`` (exact, or tanh-approximated in the finite network); kernel of Tsuchida et al. 2021, eq. 13."""
  approximate: bool = False
  name = "Gelu"

  def __post_init__(self):
    if not isinstance(self.approximate, bool):
      raise TypeError(f"approximate must be a bool, got {self.approximate!r}.")

  def fn(self, x):
    return jax.nn.gelu(x, approximate=self.approximate)

  def point_factors(self, q):
    # 1 / (1 + q), its square root, q / (1 + q), 1 / m and m = sqrt(max(q, 1)) (the scale
    # of `rsqrt_shifted_det`), sqrt(q): what the float32 dual reads of each point.
    i = 1 / (1 + q)
    m = jnp.sqrt(jnp.maximum(q, 1.0))
    return (i, jnp.sqrt(i), q * i, 1 / m, m, safe_sqrt(q))

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    if not is_float64(q12):
      return self._dual_f32(q11, q12, q22, need_dot,
                            self.point_factors(q11) if f1 is None else f1,
                            self.point_factors(q22) if f2 is None else f2)
    # With p = q11 q22, p1 = (1 + q11)(1 + q22) and delta^2 = p1 - q12^2, written in
    # bounded pieces (p/p1, q12/sqrt(p1), 1/delta) so that nothing overflows where the
    # kernel itself is representable.
    i1, i2 = 1 / (1 + q11), 1 / (1 + q22)
    p_over_p1 = (q11 * i1) * (q22 * i2)
    inv_p1 = i1 * i2
    r = q12 * (jnp.sqrt(i1) * jnp.sqrt(i2))  # q12 / sqrt(p1)
    inv_delta = rsqrt_shifted_det(q11, q12, q22)
    delta = 1 / inv_delta
    angle = jnp.arctan2(q12, delta)  # arcsin(q12 / sqrt(p1))
    nngp = q12 / 4 + (r * r * inv_delta + p_over_p1 * delta + q12 * angle) / (2 * _PI)
    dot = None
    if need_dot:
      # (1 - p) / p1 + 1 = (2 + q11 + q22) / p1: no cancellation as p / p1 -> 1.
      dot = 0.25 + angle / (2 * _PI) + (q12 * inv_delta) / (2 * _PI) * (
          inv_delta * inv_delta + (2 + (q11 + q22)) * inv_p1)
    return nngp, dot

  def _dual_f32(self, q11, q12, q22, need_dot, f1, f2):
    """The float64 formulas with per-point factors: per entry multiplies, one rsqrt and
    one sqrt (`asin_f32`), no division or atan2, so that the network is one fused loop."""
    (i1, si1, qi1, h1, m1, s1), (i2, si2, qi2, h2, m2, s2) = f1, f2
    inv_sqrt_p1 = si1 * si2
    r = q12 * inv_sqrt_p1  # q12 / sqrt(p1): the sine of the angle
    inv_m = h1 * h2
    # delta^2 / m^2 as in `rsqrt_shifted_det`, with the per-point scale and norm
    t = (1 + (q11 + q22)) * (inv_m * inv_m) + scaled_gram_det(q11, q12, q22, inv_m, s1 * s2)
    inv_delta = jax.lax.rsqrt(t) * inv_m
    delta = safe_sqrt(t) * (m1 * m2)
    cos = delta * inv_sqrt_p1  # delta / sqrt(p1) = sqrt(1 - r^2)
    angle = asin_f32(jnp.clip(r, -1.0, 1.0), cos * cos, cos)
    nngp = q12 / 4 + (r * r * inv_delta + (qi1 * qi2) * delta + q12 * angle) / (2 * _PI)
    dot = None
    if need_dot:
      dot = 0.25 + angle / (2 * _PI) + (q12 * inv_delta) / (2 * _PI) * (
          inv_delta * inv_delta + (2 + (q11 + q22)) * (i1 * i2))
    return nngp, dot


MAX_DEG = 250  # beyond ~300 points NumPy's Gauss-Hermite weights overflow to NaN


def _hermite_nodes(deg: int, dtype):
  """Gauss-Hermite nodes and weights for E over N(0, 1); nodes whose weight is 0 in
  ``dtype`` are dropped (their 0 * f(z) would be NaN where f overflows)."""
  z, w = np.polynomial.hermite_e.hermegauss(deg)
  w = (w / np.sqrt(2 * np.pi)).astype(dtype)
  keep = w > 0
  return jnp.asarray(z[keep], dtype), jnp.asarray(w[keep], dtype)


@dataclasses.dataclass(frozen=True)
class Numerical(Elementwise):
  """Any elementwise ``fn``; kernels by ``deg``-point Gauss-Hermite quadrature in 2D (Novak et al. 2020, Sec. D).

  ``df`` is the derivative (defaults to ``jax.grad(fn)``). Accurate for smooth
  functions; for kinks (ReLU-like) the error decays slowly with ``deg``.
  """
  fn_: Callable
  deg: int = 25
  df: Optional[Callable] = None
  name = "ElementwiseNumerical"
  symmetric_dual = False  # u = s1 z_i, v = s2 (rho z_i + perp z_j) treats q11 and q22 apart

  def __post_init__(self):
    if not callable(self.fn_):
      raise TypeError(f"fn must be callable, got {type(self.fn_).__name__}.")
    validation.check_positive_int(self.deg, "deg")
    if self.deg > MAX_DEG:
      raise ValueError(f"deg must be at most {MAX_DEG} (Gauss-Hermite weights of more points "
                       f"are not representable), got {self.deg}; 25-100 suffice for smooth fn.")
    if self.df is not None and not callable(self.df):
      raise TypeError(f"df must be callable or None, got {type(self.df).__name__}.")
    self._probe()

  def _probe(self):
    """fn (and its derivative) must be finite on the real line: checked at the quadrature
    nodes and a few scales, so a NaN kernel is refused here rather than returned."""
    z = np.polynomial.hermite_e.hermegauss(self.deg)[0]
    x = jnp.asarray(np.concatenate([z, 0.1 * z, [0.0, -1.0, 1.0]]), jnp.float32)
    for what, f in (("fn", self.fn_), ("the derivative of fn", self._dfn)):
      try:
        y = np.asarray(f(x))
      except Exception as e:  # pylint: disable=broad-except
        raise TypeError(f"ElementwiseNumerical needs an fn that maps a JAX array elementwise; "
                        f"calling {what} failed: {e}") from e
      bad = ~np.isfinite(y) if y.shape == x.shape else np.ones(1, bool)
      if bad.any():
        at = float(np.asarray(x)[np.argmax(bad)]) if y.shape == x.shape else float("nan")
        raise ValueError(f"ElementwiseNumerical: {what} is not finite at x = {at:g} (or does "
                         "not keep the input's shape); the Gaussian kernel needs an activation "
                         "defined on the whole real line.")

  def fn(self, x):
    return self.fn_(x)

  def _dfn(self, x):
    if self.df is not None:
      return self.df(x)
    g = jax.grad(lambda t: jnp.sum(self.fn_(t)))
    return g(x)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    dtype = jnp.result_type(q12)
    z, w = _hermite_nodes(self.deg, dtype)
    s1 = safe_sqrt(q11)
    s2 = safe_sqrt(q22)
    norm = s1 * s2
    rho = jnp.clip(jnp.where(norm > 0, q12 / jnp.where(norm > 0, norm, 1.0), 0.0), -1.0, 1.0)
    perp = safe_sqrt(1 - rho ** 2)
    shape = jnp.broadcast_shapes(jnp.shape(q11), jnp.shape(q12), jnp.shape(q22))

    def expect(f):
      # u = s1 z_i, v = s2 (rho z_i + perp z_j); sum over i in a scan, over j vectorised.
      def body(acc, zw):
        zi, wi = zw
        fu = f(s1 * zi)
        v = s2[..., None] * (rho[..., None] * zi + perp[..., None] * z)
        fv = jnp.sum(f(v) * w, axis=-1)
        return acc + wi * fu * fv, None
      acc0 = jnp.zeros(shape, dtype)
      out, _ = jax.lax.scan(body, acc0, (z, w))
      return out

    s1 = jnp.broadcast_to(s1, shape)
    s2 = jnp.broadcast_to(s2, shape)
    rho = jnp.broadcast_to(rho, shape)
    perp = jnp.broadcast_to(perp, shape)
    nngp = expect(self.fn_)
    dot = expect(self._dfn) if need_dot else None
    return nngp, dot


def ElementwiseNumerical(fn: Callable, deg: int = 25,  # pylint: disable=invalid-name
                         df: Optional[Callable] = None) -> Numerical:
  """Activation ``fn`` with kernels by Gauss-Hermite quadrature (neural_tangents.stax.ElementwiseNumerical)."""
  return Numerical(fn, deg, df)


def Tanh(deg: int = 25) -> Numerical:  # pylint: disable=invalid-name
  """tanh, with kernels by quadrature."""
  return Numerical(jnp.tanh, deg)
