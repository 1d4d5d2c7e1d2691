"""The activation of a DMFT: a `kernels.stax` activation layer, read as the solvers need it.

The solvers sample fields through the layer's function and its derivative and take
Gaussian expectations from the layer's own dual (the arc-cosine, arcsine and Gelu
closed forms, or the layer's quadrature), so that the DMFT and ``kernel_fn`` share one
implementation of every activation kernel and its numerical safeguards.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from kernels import stax
from kernels.stax import named
from kernels.stax import elementwise

# Gauss-Hermite points of the named activations (`kernels.stax.named.NAMED_ACTIVATIONS`)
# without a closed form: at 25 points
# (the stax default) tanh's NTK of a unit-variance input is off by 2.6e-4 relative, at
# 48 it agrees with 200 points to 2e-9.
QUADRATURE_DEG = 48

@functools.lru_cache(maxsize=None)
def _named_layer(name: str):
  """Cached so that equal names give equal (hashable, jit-static) layers."""
  return named.activation_layer(name, deg=QUADRATURE_DEG)


def layer(activation) -> elementwise.Elementwise:
  """The stax activation layer for a layer, a name (relu, erf, gelu, tanh, ...) or a callable."""
  if isinstance(activation, Activation):
    return activation.layer
  if isinstance(activation, elementwise.Elementwise):
    return activation
  if isinstance(activation, str):
    name = activation.lower()
    if name not in named.NAMED_ACTIVATIONS:
      raise ValueError(f"activation must be one of {sorted(named.NAMED_ACTIVATIONS)}, "
                       f"a stax activation layer or a callable; got {activation!r}.")
    return _named_layer(name)
  if isinstance(activation, stax.Layer):
    raise ValueError(f"activation must be an elementwise layer, got {type(activation).__name__}.")
  if callable(activation):
    return stax.ElementwiseNumerical(activation, deg=QUADRATURE_DEG)
  raise TypeError("activation must be a name, a stax activation layer or a callable; got "
                  f"{type(activation).__name__}.")


KINK_BANDWIDTH = 1.06


@dataclasses.dataclass(frozen=True)
class Activation:
  """A stax activation layer with the derivative and Gaussian kernels the solvers use."""
  layer: elementwise.Elementwise

  @property
  def name(self) -> str:
    fn = getattr(self.layer, "fn_", None)
    if isinstance(self.layer, elementwise.ABRelu):
      return {(0.0, 1.0): "relu", (1.0, 1.0): "linear", (-1.0, 1.0): "abs"}.get(
          self.ab, f"abrelu({self.layer.a:g}, {self.layer.b:g})")
    if fn is not None:
      return getattr(fn, "__name__", "custom")
    return self.layer.name.lower()

  @property
  def ab(self):
    """(a, b) when the activation is piecewise linear ``a min(x, 0) + b max(x, 0)``, else None."""
    if isinstance(self.layer, elementwise.ABRelu):
      return (float(self.layer.a), float(self.layer.b))
    return None

  @property
  def is_linear(self) -> bool:
    return self.ab == (1.0, 1.0)

  def __call__(self, x):
    return self.layer.fn(x)

  def derivative(self, x):
    """Elementwise derivative of the activation."""
    if self.ab is not None:
      a, b = self.ab
      return jnp.where(x > 0, b, a).astype(x.dtype)
    return jnp.vectorize(jax.grad(self.layer.fn))(x)

  def second_derivative(self, x, samples_axis=None):
    """Elementwise second derivative.

    A piecewise-linear activation has ``(b - a) delta(x)``: with ``samples_axis`` (x
    holds samples of one distribution along it) the delta is a Gaussian kernel
    density estimate at the kink, bandwidth `KINK_BANDWIDTH` times the samples' std
    times n**-1/5 (Silverman's rule); without it, zero (the derivative almost everywhere).
    """
    if self.ab is not None:
      a, b = self.ab
      if samples_axis is None or a == b:
        return jnp.zeros_like(x)
      n = x.shape[samples_axis]
      sd = jnp.std(x, axis=samples_axis, keepdims=True)
      # A field with no spread (an input x = 0 keeps h = 0 on every sample) sits on the
      # kink without crossing it: no density there (it would be 1/0).
      spread = sd > 1e-6 * jnp.max(sd)
      eps = jnp.where(spread, KINK_BANDWIDTH * sd * n ** -0.2, 1.0)
      density = jnp.exp(-0.5 * (x / eps) ** 2) / (math.sqrt(2 * math.pi) * eps)
      return (b - a) * jnp.where(spread, density, 0.0)
    return jnp.vectorize(jax.grad(jax.grad(self.layer.fn)))(x)


def nonsmooth(act: Activation, derivatives: int = 2) -> Optional[str]:
  """Where an activation bends or jumps in a way its first ``derivatives`` (1 or 2), as
  JAX computes them, do not show; None when it does not.

  The solvers use phi' and (deep, sampled) phi'' as JAX differentiates them, almost
  everywhere: a kink of phi (a jump of phi') or a jump of phi puts a delta function in
  them that no derivative of the samples sees, and the DMFT would be silently wrong.
  Piecewise-linear `ABRelu` activations have their kink handled (`second_derivative`);
  for the others, phi and phi' are compared on a grid of [-8, 8] with the integrals of
  the derivatives JAX gives (trapezoid rule, steps of 1e-3). Cached per activation.
  """
  if act.ab is not None or isinstance(act.layer, (elementwise.Erf, elementwise.Gelu)):
    return None
  if getattr(act.layer, "fn_", None) in _SMOOTH:
    return None
  return next((m for m in _defects(act)[:derivatives] if m), None)


# Smooth functions of the named activations (no grid check needed).
_SMOOTH = (jnp.tanh, jax.nn.sigmoid, jax.nn.softplus, jnp.sin)


@functools.lru_cache(maxsize=64)
def _defects(act: Activation) -> tuple:
  """(a jump of phi, a jump of phi'), each a message or None."""
  x = jnp.linspace(-8.0, 8.0, 16001)

  @jax.jit
  def values(x):
    return act(x), act.derivative(x), act.second_derivative(x)

  f, d1, d2 = (np.asarray(v, dtype=np.float64) for v in values(x))
  xs, dx = np.asarray(x, dtype=np.float64), 16.0 / 16000
  out = []
  for name, v, dv in (("phi", f, d1), ("phi'", d1, d2)):
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(dv))):
      out.append(f"{name} or its derivative is not finite on [-8, 8]")
      continue
    gap = np.diff(v) - 0.5 * (dv[1:] + dv[:-1]) * dx
    i = int(np.argmax(np.abs(gap)))
    big = abs(gap[i]) > 1e-3 * max(1.0, float(np.max(np.abs(v))))
    out.append(f"{name} jumps by {gap[i]:.3g} near {xs[i]:.3g}" if big else None)
  return tuple(out)


def get(activation) -> Activation:
  """An `Activation` from a stax layer, a name or a callable (see `layer`)."""
  if isinstance(activation, Activation):
    return activation
  return Activation(layer(activation))


def gaussian_kernels(act: Activation, cov):
  """E[phi(h_a) phi(h_b)] and E[phi'(h_a) phi'(h_b)] for h ~ N(0, cov): the layer's dual.

  Cho & Saul (2009), eq. 6 (piecewise linear); Williams (1997), eq. 11 (erf);
  Tsuchida et al. (2021), eq. 13 (gelu); Gauss-Hermite quadrature otherwise
  (`kernels.stax.ElementwiseNumerical`).
  """
  cov = jnp.asarray(cov)
  d = jnp.maximum(jnp.diag(cov), 0.0)
  f = act.layer.point_factors(d)
  f1 = tuple(v[:, None] for v in f)
  f2 = tuple(v[None, :] for v in f)
  phi, dphi = act.layer.dual(d[:, None], cov, d[None, :], True, f1, f2)
  if not act.layer.symmetric_dual:
    phi, dphi = 0.5 * (phi + phi.T), 0.5 * (dphi + dphi.T)
  return phi, dphi
