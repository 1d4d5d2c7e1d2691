"""Activations with closed-form duals beyond ReLU, Erf and Gelu (neural-tangents' set),
and a user's activation with a user's dual (`Elementwise`).

Each maps the Gaussian covariance ``(q11, q12, q22)`` of a pair of pre-activations to
``E[phi(u) phi(v)]`` and ``E[phi'(u) phi'(v)]`` (Lee et al. 2018, eq. 4; Jacot et al.
2018, Thm. 1), written with sums and products of ``q11`` and ``q22`` only, so that the
duals are symmetric in their arguments to the bit (see `Elementwise`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels import validation
from kernels.stax.elementwise import Elementwise, Erf, correlation_angle, safe_sqrt

_PI = math.pi


@dataclasses.dataclass(frozen=True)
class SinLayer(Elementwise):
  """``a sin(b x + c)``: ``E = a^2/2 (e^{-b^2 s/2 + b^2 q12} - cos(2c) e^{-b^2 s/2 - b^2 q12})``, s = q11 + q22 (Pearce et al. 2019, eq. 12)."""
  a: float = 1.0
  b: float = 1.0
  c: float = 0.0
  name = "Sin"

  def __post_init__(self):
    for f in ("a", "b", "c"):
      object.__setattr__(self, f, validation.check_real(getattr(self, f), f))

  def fn(self, x):
    return self.a * jnp.sin(self.b * x + self.c)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    b2, half_a2 = self.b ** 2, self.a ** 2 / 2
    s = -0.5 * (q11 + q22)
    s1 = jnp.exp(b2 * (s + q12))
    s2 = jnp.exp(b2 * (s - q12)) * math.cos(2 * self.c)
    return half_a2 * (s1 - s2), (half_a2 * b2 * (s1 + s2) if need_dot else None)


def Sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> SinLayer:  # pylint: disable=invalid-name
  """``a sin(b x + c)`` (neural_tangents.stax.Sin)."""
  return SinLayer(a, b, c)


def Cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> SinLayer:  # pylint: disable=invalid-name
  """``a cos(b x + c) = a sin(b x + c + pi/2)`` (neural_tangents.stax.Cos)."""
  return SinLayer(a, b, validation.check_real(c, "c") + _PI / 2)


def Sigmoid_like() -> Erf:  # pylint: disable=invalid-name
  """``0.5 erf(x / 2.4020563531719796) + 0.5``, a sigmoid (neural_tangents.stax.Sigmoid_like)."""
  return Erf(0.5, 1 / 2.4020563531719796, 0.5)


@dataclasses.dataclass(frozen=True)
class RbfLayer(Elementwise):
  """``sqrt(2) sin(sqrt(2 gamma) x + pi/4)``, whose NNGP is the RBF kernel ``exp(-gamma (q11 + q22 - 2 q12))`` (Rahimi & Recht 2007)."""
  gamma: float = 1.0
  name = "Rbf"

  def __post_init__(self):
    g = validation.check_nonnegative(self.gamma, "gamma")
    object.__setattr__(self, "gamma", g)

  def fn(self, x):
    return math.sqrt(2) * jnp.sin(jnp.sqrt(2 * self.gamma) * x + _PI / 4)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    nngp = jnp.exp(self.gamma * (2 * q12 - (q11 + q22)))
    return nngp, (2 * self.gamma * nngp if need_dot else None)


def Rbf(gamma: float = 1.0) -> RbfLayer:  # pylint: disable=invalid-name
  """Random-Fourier-feature activation of the RBF kernel (neural_tangents.stax.Rbf)."""
  return RbfLayer(gamma)


@dataclasses.dataclass(frozen=True)
class ExpLayer(Elementwise):
  """``a exp(b x)``: ``E = a^2 exp(b^2 ((q11 + q22)/2 + q12))`` (log-normal moments)."""
  a: float = 1.0
  b: float = 1.0
  name = "Exp"

  def __post_init__(self):
    for f in ("a", "b"):
      object.__setattr__(self, f, validation.check_real(getattr(self, f), f))

  def fn(self, x):
    return self.a * jnp.exp(self.b * x)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    e = jnp.exp(self.b ** 2 * (0.5 * (q11 + q22) + q12))
    a2 = self.a ** 2
    return a2 * e, (a2 * self.b ** 2 * e if need_dot else None)


def Exp(a: float = 1.0, b: float = 1.0) -> ExpLayer:  # pylint: disable=invalid-name
  """``a exp(b x)`` (neural_tangents.stax.Exp)."""
  return ExpLayer(a, b)


@dataclasses.dataclass(frozen=True)
class GaussianLayer(Elementwise):
  """``a exp(b x^2)``: ``E = a^2 / sqrt((1 - 2b q11)(1 - 2b q22) - 4 b^2 q12^2)`` (Gaussian integral)."""
  a: float = 1.0
  b: float = -1.0
  name = "Gaussian"

  def __post_init__(self):
    for f in ("a", "b"):
      object.__setattr__(self, f, validation.check_real(getattr(self, f), f))
    if not validation.is_traced(self.b) and self.b > 0:
      raise ValueError(f"b must be <= 0 (exp(b x^2) has no Gaussian moments for b > 0), "
                       f"got {self.b}.")

  def fn(self, x):
    return self.a * jnp.exp(self.b * x ** 2)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    prod = (1 - 2 * self.b * q11) * (1 - 2 * self.b * q22)
    factor = 4 * self.b ** 2
    det = safe_sqrt(prod - factor * q12 ** 2)
    a2 = self.a ** 2
    dot = a2 * factor * q12 / det ** 3 if need_dot else None
    return a2 / det, dot


def Gaussian(a: float = 1.0, b: float = -1.0) -> GaussianLayer:  # pylint: disable=invalid-name
  """``a exp(b x^2)`` (neural_tangents.stax.Gaussian)."""
  return GaussianLayer(a, b)


@dataclasses.dataclass(frozen=True)
class ExpNormalizedLayer(Elementwise):
  """The normalised Gaussian kernel ``sqrt(q11 q22) exp(gamma (rho + shift))`` (Shankar et al. 2020, p. 6); kernel only."""
  gamma: float = 1.0
  shift: float = -1.0
  do_clip: bool = False
  name = "ExpNormalized"

  def __post_init__(self):
    object.__setattr__(self, "gamma", validation.check_real(self.gamma, "gamma"))
    object.__setattr__(self, "shift", validation.check_real(self.shift, "shift"))
    if not isinstance(self.do_clip, bool):
      raise TypeError(f"do_clip must be a bool, got {self.do_clip!r}.")

  def fn(self, x):
    raise ValueError("ExpNormalized has no finite-width network (as in neural-tangents): use "
                     "its kernel_fn only.")

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    tol = 1e-30
    prod = jnp.sqrt(jnp.maximum(q11 * q22, tol))
    rho = q12 / prod
    if self.do_clip:
      rho = jnp.clip(rho, -1, 1)
    e = jnp.exp(self.gamma * (rho + self.shift))
    return prod * e, (self.gamma * e if need_dot else None)


def ExpNormalized(gamma: float = 1.0, shift: float = -1.0,  # pylint: disable=invalid-name
                  do_clip: bool = False) -> ExpNormalizedLayer:
  """The normalised Gaussian kernel layer (neural_tangents.stax.ExpNormalized)."""
  return ExpNormalizedLayer(gamma, shift, do_clip)


@dataclasses.dataclass(frozen=True)
class SignLayer(Elementwise):
  """``sign(x)``: ``E = 1 - 2 theta / pi`` (the degree-0 arc-cosine kernel, Cho & Saul 2009, eq. 6); derivative 0."""
  name = "Sign"

  def fn(self, x):
    return jnp.sign(x)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    theta, _ = correlation_angle(q11, q12, q22)
    zero = (q11 == 0) | (q22 == 0)
    nngp = jnp.where(zero, 0.0, 1 - theta * (2 / _PI))
    return nngp, (jnp.zeros_like(nngp) if need_dot else None)


def Sign() -> SignLayer:  # pylint: disable=invalid-name
  """``sign(x)`` (neural_tangents.stax.Sign)."""
  return SignLayer()


def _monomial_dual(q12, prod, degree):
  """E[u^n v^n] for (u, v) Gaussian with E uv = q12 and E u^2 E v^2 = prod (Isserlis)."""
  if degree == -1:
    return jnp.zeros_like(q12)
  if degree == 0:
    return jnp.ones_like(q12)
  if degree == 1:
    return q12
  if degree == 2:
    return 2 * q12 ** 2 + prod
  if degree == 3:
    return 6 * q12 ** 3 + 9 * q12 * prod
  if degree == 4:
    return 3 * (8 * q12 ** 4 + 3 * prod * (8 * q12 ** 2 + prod))
  return 15 * q12 * (8 * q12 ** 4 + 5 * prod * (8 * q12 ** 2 + 3 * prod))


@dataclasses.dataclass(frozen=True)
class MonomialLayer(Elementwise):
  """``x^degree``, degree 0..5: Isserlis moments (neural-tangents' Monomial)."""
  degree: int
  name = "Monomial"

  def __post_init__(self):
    if isinstance(self.degree, bool) or self.degree not in range(6):
      raise ValueError(f"degree must be an integer between 0 and 5, got {self.degree!r}.")

  def fn(self, x):
    return x ** self.degree

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    prod = q11 * q22
    dot = self.degree ** 2 * _monomial_dual(q12, prod, self.degree - 1) if need_dot else None
    return _monomial_dual(q12, prod, self.degree), dot


def Monomial(degree: int) -> MonomialLayer:  # pylint: disable=invalid-name
  """``x^degree`` (neural_tangents.stax.Monomial)."""
  return MonomialLayer(degree)


def _arccos_j(n, theta, s, c):
  """J_n(theta) of the arc-cosine kernels (Cho & Saul 2009, eq. 6-7), n = 0..3, with
  s = sin(theta) and c = cos(theta) given (no sine or cosine per entry)."""
  t = _PI - theta
  if n == 0:
    return t
  if n == 1:
    return s + t * c
  if n == 2:
    return 3 * s * c + t * (1 + 2 * c ** 2)
  return 15 * s - 11 * s ** 3 + t * (9 * s ** 2 * c + 15 * c ** 3)


def _norm_factors(q):
  """sqrt(q) and 1 / sqrt(q) (0 where q = 0) of each point: correlations and norms from
  products of per-point vectors, with no square root or division per entry."""
  s = safe_sqrt(q)
  return (s, jnp.where(s > 0, 1 / jnp.where(s > 0, s, 1.0), 0.0))


@dataclasses.dataclass(frozen=True)
class RectifiedMonomialLayer(Elementwise):
  """``max(x, 0)^degree``: ``E = (q11 q22)^{n/2} J_n(theta) / (2 pi)`` (Cho & Saul 2009, eq. 6), degree 0..3."""
  degree: int
  name = "RectifiedMonomial"

  def __post_init__(self):
    if isinstance(self.degree, bool) or self.degree not in range(4):
      raise ValueError(f"degree must be an integer between 0 and 3, got {self.degree!r}.")

  def fn(self, x):
    return jnp.where(x >= 0, x ** self.degree, 0.0)

  def point_factors(self, q):
    return _norm_factors(q)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    (s1, i1), (s2, i2) = (_norm_factors(q11) if f1 is None else f1,
                          _norm_factors(q22) if f2 is None else f2)
    theta, cross = correlation_angle(q11, q12, q22)
    inv = i1 * i2
    r = s1 * s2  # sqrt(q11 q22)
    sin, cos = cross * inv, jnp.clip(q12 * inv, -1.0, 1.0)
    n = self.degree
    nngp = r ** n * _arccos_j(n, theta, sin, cos) / (2 * _PI)
    dot = None
    if need_dot:
      dot = (n ** 2 * r ** (n - 1) * _arccos_j(n - 1, theta, sin, cos) / (2 * _PI) if n > 0
             else jnp.zeros_like(nngp))
    return nngp, dot


def RectifiedMonomial(degree: int) -> RectifiedMonomialLayer:  # pylint: disable=invalid-name
  """``(x >= 0) x^degree`` (neural_tangents.stax.RectifiedMonomial)."""
  return RectifiedMonomialLayer(degree)


@dataclasses.dataclass(frozen=True)
class PolynomialLayer(Elementwise):
  """``sum_i coef[i] x^i``: the Hermite expansion ``sum_l r_l(q11) r_l(q22) rho^l`` (neural-tangents' Polynomial)."""
  coef: Tuple[float, ...]
  name = "Polynomial"

  def __post_init__(self):
    try:
      coef = tuple(validation.check_real(c, "coef") for c in self.coef)
    except TypeError as e:
      raise TypeError(f"coef must be a sequence of real numbers, got {self.coef!r}.") from e
    object.__setattr__(self, "coef", coef)

  def fn(self, x):
    return jnp.polyval(jnp.asarray(self.coef[::-1], x.dtype), x) if self.coef else 0 * x

  def _r(self, q, l):
    deg = len(self.coef)
    f = math.factorial
    c = [0.0] * deg
    for i in range(0, (deg - 1 - l) // 2 + 1):
      j = 2 * i + l
      c[j] = self.coef[j] * f(j) / (2 ** i * f(i) * f(l) ** 0.5)
    return jnp.polyval(jnp.asarray(c[::-1], jnp.result_type(q)), jnp.sqrt(q))

  def point_factors(self, q):
    # 1 / sqrt(q) (0 where q = 0) and r_l(q), l < deg: per point, not per entry
    return (_norm_factors(q)[1],) + tuple(self._r(q, l) for l in range(len(self.coef)))

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    deg = len(self.coef)
    (i1, *r1), (i2, *r2) = (self.point_factors(q11) if f1 is None else f1,
                            self.point_factors(q22) if f2 is None else f2)
    inv = i1 * i2  # 1 / sqrt(q11 q22)
    ratio = q12 * inv
    rs = [r1[l] * r2[l] for l in range(deg)]
    zero = jnp.zeros_like(ratio)
    nngp = sum((rs[l] * ratio ** l for l in range(deg)), zero)
    dot = None
    if need_dot:
      dot = sum((l * rs[l] * ratio ** (l - 1) for l in range(1, deg)), zero) * inv
    return nngp, dot


def Polynomial(coef) -> PolynomialLayer:  # pylint: disable=invalid-name
  """``coef[0] + coef[1] x + ...`` (neural_tangents.stax.Polynomial)."""
  return PolynomialLayer(tuple(coef))


@dataclasses.dataclass(frozen=True)
class HermiteLayer(Elementwise):
  """The normalised probabilists' Hermite polynomial ``He_n / sqrt(n!)``: ``E = q12^n`` for unit-variance inputs (O'Donnell 2014, Prop. 11.31)."""
  degree: int
  name = "Hermite"

  def __post_init__(self):
    if isinstance(self.degree, bool) or not isinstance(self.degree, int) or self.degree < 0:
      raise ValueError(f"degree must be a non-negative integer, got {self.degree!r}.")

  def fn(self, x):
    p = np.polynomial.hermite_e.herme2poly([0] * self.degree + [1])[::-1]
    return jnp.polyval(jnp.asarray(p, x.dtype), x) / math.sqrt(math.factorial(self.degree))

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    n = self.degree
    dot = None
    if need_dot:
      dot = jnp.zeros_like(q12) if n == 0 else n * q12 ** (n - 1)
    return q12 ** n + 0 * (q11 + q22), dot


def Hermite(degree: int) -> HermiteLayer:  # pylint: disable=invalid-name
  """Hermite polynomial of ``degree`` for unit-variance inputs (neural_tangents.stax.Hermite)."""
  return HermiteLayer(degree)


@dataclasses.dataclass(frozen=True)
class GaborLayer(Elementwise):
  """``exp(-x^2) sin(x)``: the closed form of neural-tangents' Gabor (a Gaussian integral)."""
  name = "Gabor"

  def fn(self, x):
    return jnp.exp(-x ** 2) * jnp.sin(x)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    prod, sum_ = q11 * q22, q11 + q22
    diff = 4 * (prod - q12 ** 2)
    denom = 2 * sum_ + diff + 1
    num = sum_ + diff + 2 * q12
    # One rsqrt per entry for 1/sqrt(denom), 1/denom and denom^-2.5 (no power or division).
    inv_sqrt = jax.lax.rsqrt(denom)
    inv = inv_sqrt * inv_sqrt
    exp_left = jnp.exp(-0.5 * num * inv)
    exp_right = jnp.exp(2 * q12 * inv)
    dot = None
    if need_dot:
      shared = 1 + 2 * sum_ + 4 * (q12 ** 2 + prod)
      diff_term = 4 * q12 * (diff + 3 * sum_ + 2)
      dot = exp_left * ((shared - diff_term) + exp_right * (shared + diff_term)) * (
          0.5 * inv_sqrt * (inv * inv))
    return exp_left * (exp_right - 1) * (0.5 * inv_sqrt), dot


def Gabor() -> GaborLayer:  # pylint: disable=invalid-name
  """``exp(-x^2) sin(x)`` (neural_tangents.stax.Gabor)."""
  return GaborLayer()


@dataclasses.dataclass(frozen=True)
class CustomLayer(Elementwise):
  """A user's activation ``fn`` with the user's closed-form dual ``nngp_fn(cov12, var1,
  var2) = E[fn(u) fn(v)]`` (neural_tangents.stax.Elementwise; Han et al. 2022, "Fast
  Neural Kernel Embeddings for General Activations", Sec. 3). The NTK's factor
  ``E[fn'(u) fn'(v)]`` is ``d_nngp_fn`` when given, else ``d nngp_fn / d cov12`` by
  automatic differentiation (Price's theorem). Both functions take scalars; they are
  vectorised here."""
  fn_: Optional[Callable] = None
  nngp_fn: Optional[Callable] = None
  d_nngp_fn: Optional[Callable] = None
  symmetric_dual = False  # a user's function need not be symmetric to the bit

  def __post_init__(self):
    if self.fn_ is None and self.nngp_fn is None:
      raise ValueError("Elementwise: give fn (the finite network) or nngp_fn (the kernels); "
                       "with neither the layer does nothing.")
    for what in ("fn_", "nngp_fn", "d_nngp_fn"):
      v = getattr(self, what)
      if v is not None and not callable(v):
        raise TypeError(f"Elementwise: {what.rstrip('_')} must be callable or None, got "
                        f"{type(v).__name__}.")

  @property
  def name(self):  # pylint: disable=invalid-overridden-method
    f = self.fn_ if self.fn_ is not None else self.nngp_fn
    return f"Elementwise({getattr(f, '__name__', 'fn')})"

  def fn(self, x):
    if self.fn_ is None:
      raise NotImplementedError("Elementwise was given no fn: it has kernels (nngp_fn) but no "
                                "finite network.")
    return self.fn_(x)

  def dual(self, q11, q12, q22, need_dot, f1=None, f2=None):
    if self.nngp_fn is None:
      raise NotImplementedError("Elementwise was given no nngp_fn: it has a finite network "
                                "(fn) but no kernels; ElementwiseNumerical integrates fn.")
    shape = jnp.broadcast_shapes(jnp.shape(q11), jnp.shape(q12), jnp.shape(q22))
    args = [jnp.broadcast_to(q, shape) for q in (q12, q11, q22)]  # (cov12, var1, var2)
    nngp = jnp.vectorize(self.nngp_fn)(*args)
    dot = None
    if need_dot:
      d = self.d_nngp_fn if self.d_nngp_fn is not None else jax.grad(self.nngp_fn)
      dot = jnp.vectorize(d)(*args)
    return nngp, dot


def Elementwise(fn: Optional[Callable] = None, nngp_fn: Optional[Callable] = None,  # pylint: disable=invalid-name
                d_nngp_fn: Optional[Callable] = None) -> CustomLayer:
  """Activation ``fn`` with a closed-form ``nngp_fn(cov12, var1, var2)`` and optionally
  ``d_nngp_fn`` (neural_tangents.stax.Elementwise)."""
  return CustomLayer(fn, nngp_fn, d_nngp_fn)
