"""Normalisation and noise: LayerNorm and Dropout."""
from __future__ import annotations

import dataclasses
from typing import Tuple, Union

import jax
import jax.numpy as jnp

from kernels import validation
from kernels.kernel import Requirements, zero_masked
from kernels.stax import layout, spatial_ops
from kernels.stax.layer import Layer


@dataclasses.dataclass(frozen=True)
class LayerNormLayer(Layer):
  """``(x - mean) / sqrt(eps + var)`` over ``axis`` (channels and any spatial axes), both
  read in the activations' layout (``channel_axis=1`` for NCHW)."""
  axis: Tuple[int, ...] = (-1,)
  eps: float = 1e-12
  batch_axis: int = 0
  channel_axis: int = -1

  requirements = Requirements(gaussian=True)

  def __post_init__(self):
    axis = (self.axis,) if isinstance(self.axis, int) else tuple(self.axis)
    for a in axis:
      if isinstance(a, bool) or not isinstance(a, int):
        raise TypeError(f"axis must be an integer or a tuple of integers, got {self.axis!r}.")
    object.__setattr__(self, "axis", axis)
    eps = validation.check_nonnegative(self.eps, "eps")
    object.__setattr__(self, "eps", eps)
    layout.check_axes(self.batch_axis, self.channel_axis, "LayerNorm")

  def _axes(self, ndim, path):
    """The normalised axes of ``ndim``-axis activations, in their layout (sorted)."""
    c = layout.channel_index((1,) * ndim, self.channel_axis, "LayerNorm", path)
    out = set()
    for a in self.axis:
      if not -ndim <= a < ndim:
        raise ValueError(f"LayerNorm at {path}: axis {self.axis} is out of range for inputs "
                         f"with {ndim} axes.")
      out.add(a % ndim)
    if 0 in out:
      raise ValueError(f"LayerNorm at {path}: axis {self.axis} includes the batch axis 0; "
                       "normalise over channels and spatial axes only.")
    if c not in out:
      raise ValueError(f"LayerNorm at {path}: axis {self.axis} must include the channel axis "
                       f"{self.channel_axis} (the kernel exists only for a normalisation over "
                       "channels).")
    return tuple(sorted(out))

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    axes = self._axes(x.ndim, path)
    mean = jnp.mean(x, axes, keepdims=True)
    var = jnp.var(x, axes, keepdims=True)
    return (x - mean) / jnp.sqrt(self.eps + var)

  def _kernel(self, k, path, ctx):
    """Each point divided by its mean variance over the axes (Xiao et al. 2020, "Disentangling
    Trainability and Generalization", App. C; neural-tangents' LayerNorm)."""
    if isinstance(k, list):
      raise ValueError("LayerNorm expects a single input kernel.")
    if not k.is_gaussian:
      raise ValueError(f"LayerNorm at {path} has a kernel only on Gaussian inputs: put a Dense "
                       "or Conv layer before it.")
    n_sp = len(k.spatial)
    c = layout.check_kernel(k, self.channel_axis, "LayerNorm", path)
    axes = [layout.to_channels_last_axis(a, n_sp + 2, c) for a in self._axes(n_sp + 2, path)]
    sp_axes = tuple(sorted(a for a in axes if a != n_sp + 1))  # positions 1..n_sp
    full = not k.diagonal_spatial

    def mean_var(cov, mask):
      q = spatial_ops.variances(cov, n_sp, full) if n_sp else cov
      if sp_axes and mask is not None:
        # neural-tangents' masked mean: the sum of eps + q over all positions (masked
        # ones hold eps) over the number of unmasked ones, at least 1.
        count = jnp.sum(~jnp.broadcast_to(mask, q.shape), sp_axes, keepdims=True)
        m = jnp.sum(self.eps + q, sp_axes, keepdims=True) / jnp.maximum(count, 1).astype(q.dtype)
        return jnp.broadcast_to(m, q.shape)
      if sp_axes:
        q = jnp.broadcast_to(jnp.mean(q, sp_axes, keepdims=True), q.shape)
      return self.eps + q

    m1 = mean_var(k.cov1, k.mask1)
    m2 = m1 if k.x1_is_x2 else mean_var(k.cov2, k.mask2)
    e = spatial_ops.expand
    if n_sp:
      r12 = jax.lax.rsqrt(e(m1, 2, 0, n_sp, full, 0) * e(m2, 2, 1, n_sp, full, 1))
      side = lambda m: (jax.lax.rsqrt(e(m, 1, 0, n_sp, True, 0) * e(m, 1, 0, n_sp, True, 1))
                        if full else 1.0 / m)
    else:
      r12 = jax.lax.rsqrt(m1[:, None] * m2[None, :])
      side = lambda m: 1.0 / m
    cov1 = k.cov1 * side(m1)
    cov2 = cov1 if k.x1_is_x2 else k.cov2 * side(m2)
    ntk = None if k.ntk is None else k.ntk * r12
    k = k.replace(nngp=k.nngp * r12, ntk=ntk, cov1=cov1, cov2=cov2)
    # Masked positions stay zero (0 * rsqrt(eps^2) would be NaN for eps = 0).
    return k if k.mask1 is None else k.remask()

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, x, mask, path, ctx):
    """neural-tangents' masked LayerNorm: the mean over the unmasked entries of the axes
    (at least 1), the variance ``sum (x - mean)^2`` over all of them divided by the same
    count; masked entries are read as zero."""
    axes = self._axes(x.ndim, path)
    x = zero_masked(x, mask)
    count = jnp.sum(~jnp.broadcast_to(mask, x.shape), axes, keepdims=True)
    count = jnp.maximum(count, 1).astype(x.dtype)
    mean = jnp.sum(x, axes, keepdims=True) / count
    var = jnp.sum((x - mean) ** 2, axes, keepdims=True) / count
    return (x - mean) / jnp.sqrt(self.eps + var), mask


def LayerNorm(axis: Union[int, Tuple[int, ...]] = -1, eps: float = 1e-12,  # pylint: disable=invalid-name
              batch_axis: int = 0, channel_axis: int = -1) -> LayerNormLayer:
  """Layer normalisation over ``axis`` (neural_tangents.stax.LayerNorm)."""
  return LayerNormLayer(axis, eps, batch_axis, channel_axis)


@dataclasses.dataclass(frozen=True)
class DropoutLayer(Layer):
  """Keeps each entry with probability ``rate``, scaled by ``1/rate`` (``mode="train"``)."""
  rate: float
  mode: str = "train"

  def __post_init__(self):
    rate = validation.check_real(self.rate, "rate")
    if not validation.is_traced(rate) and not 0.0 < rate <= 1.0:
      raise ValueError(f"rate must be in (0, 1] (the keep rate, as in neural-tangents), got "
                       f"{rate}.")
    object.__setattr__(self, "rate", rate)
    if self.mode not in ("train", "test"):
      raise ValueError(f"mode must be 'train' or 'test', got {self.mode!r}.")

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    if self.mode == "test" or self.rate == 1.0:
      return x
    key = ctx.rng_at(path)
    if key is None:
      raise ValueError(f"Dropout at {path} in train mode needs a key: apply_fn(params, x, "
                       "rng=key).")
    keep = jax.random.bernoulli(key, self.rate, x.shape)
    return jnp.where(keep, x / self.rate, 0.0)

  def _kernel(self, k, path, ctx):
    """Equal inputs at equal positions gain ``1/rate`` (Schoenholz et al. 2017, eq. 3; neural-tangents' Dropout)."""
    if isinstance(k, list):
      raise ValueError("Dropout expects a single input kernel.")
    if self.mode == "test":
      return k
    if k.source == "input":
      raise ValueError(f"Dropout at {path} cannot be applied to the inputs: put a layer before it.")
    n_sp, full = len(k.spatial), not k.diagonal_spatial
    f = 1.0 / self.rate
    sd = spatial_ops.scale_diagonal
    cov1 = sd(k.cov1, 1, n_sp, full, f, False)
    cov2 = cov1 if k.x1_is_x2 else sd(k.cov2, 1, n_sp, full, f, False)
    if k.x1_is_x2:
      nngp = sd(k.nngp, 2, n_sp, full, f, True)
      ntk = None if k.ntk is None else sd(jnp.broadcast_to(k.ntk, k.nngp.shape), 2, n_sp, full,
                                          f, True)
    else:
      nngp, ntk = k.nngp, k.ntk
    return k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, is_gaussian=False)

  def _supports_mask(self):
    return True  # elementwise: masked (zero) covariances stay zero


def Dropout(rate: float, mode: str = "train") -> DropoutLayer:  # pylint: disable=invalid-name
  """Dropout with keep rate ``rate`` (neural_tangents.stax.Dropout)."""
  return DropoutLayer(rate, mode)
