"""Pooling and flattening: AvgPool, SumPool, GlobalAvgPool, GlobalSumPool, Flatten."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from kernels.kernel import Requirements, zero_masked
from kernels.stax import layout, spatial_ops
from kernels.stax.conv import _int_tuple, center_mask, check_padding
from kernels.stax.layer import Layer


def _spatial_of(shape, name, path, channel_axis=-1):
  """(spatial shape, channel axis as a non-negative index) of an input shape."""
  if len(shape) < 3:
    raise ValueError(f"{name} at {path} needs inputs with spatial axes (n, *spatial, channels), "
                     f"got shape {tuple(shape)}.")
  c = layout.channel_index(shape, channel_axis, name, path)
  return tuple(n for i, n in enumerate(shape) if i not in (0, c)), c


@dataclasses.dataclass(frozen=True)
class _Pool(Layer):
  """Window pooling over the spatial axes of ``(n, *spatial, channels)`` inputs."""
  window_shape: Tuple[int, ...]
  strides: Optional[Tuple[int, ...]] = None
  padding: str = "VALID"
  normalize_edges: bool = False
  batch_axis: int = 0
  channel_axis: int = -1

  average = True
  name = "Pool"
  requirements = Requirements(full_spatial=True, spatial=True)

  def __post_init__(self):
    ws = _int_tuple(self.window_shape, "window_shape")
    object.__setattr__(self, "window_shape", ws)
    object.__setattr__(self, "strides",
                       _int_tuple(self.strides, "strides", len(ws), allow_none=True)
                       or (1,) * len(ws))
    object.__setattr__(self, "padding", check_padding(self.padding))
    if not isinstance(self.normalize_edges, bool):
      raise TypeError(f"normalize_edges must be a bool, got {self.normalize_edges!r}.")
    layout.check_axes(self.batch_axis, self.channel_axis, self.name)

  def _check(self, spatial, path):
    if len(spatial) != len(self.window_shape):
      raise ValueError(f"{self.name} at {path}: window_shape {self.window_shape} has "
                       f"{len(self.window_shape)} spatial axes, its input has {len(spatial)} "
                       f"(spatial shape {tuple(spatial)}).")
    for n, w, s in zip(spatial, self.window_shape, self.strides):
      if self.padding == "VALID" and w > n:
        raise ValueError(f"{self.name} at {path}: window_shape {self.window_shape} is larger "
                         f"than the input's spatial shape {tuple(spatial)} with VALID padding.")
      if s > n:
        raise ValueError(f"{self.name} at {path}: strides {self.strides} are larger than the "
                         f"input's spatial shape {tuple(spatial)}.")

  def _shape(self, shape, path):
    spatial, c = _spatial_of(shape, self.name, path, self.channel_axis)
    self._check(spatial, path)
    out = tuple(spatial_ops.out_size(n, w, s, self.padding)
                for n, w, s in zip(spatial, self.window_shape, self.strides))
    out = (shape[0],) + out
    return out[:c] + (shape[c],) + out[c:]

  def _init(self, key, shape, path, ctx, sampler, dtype):
    return self._shape(tuple(shape), path), ()

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    c = layout.channel_index(x.shape, self.channel_axis, self.name, path)
    return layout.from_channels_last(self._pool(layout.to_channels_last(x, c), path), c)

  def _pool(self, x, path):
    """Pooling of channels-last x."""
    spatial, _ = _spatial_of(x.shape, self.name, path)
    self._check(spatial, path)
    dims = (1,) + self.window_shape + (1,)
    strides = (1,) + self.strides + (1,)
    pads = [(0, 0)] + [spatial_ops.pads(n, w, s, self.padding) for n, w, s in
                       zip(spatial, self.window_shape, self.strides)] + [(0, 0)]
    if self.padding == "CIRCULAR":
      x = jnp.pad(x, pads, mode="wrap")
      pads = [(0, 0)] * x.ndim
    y = jax.lax.reduce_window(x, np.zeros((), x.dtype), jax.lax.add, dims, strides, pads)
    if not self.average:
      return y
    if self.normalize_edges and self.padding == "SAME":
      ones = jnp.ones((1,) + spatial + (1,), x.dtype)
      counts = jax.lax.reduce_window(ones, np.zeros((), x.dtype), jax.lax.add, dims, strides,
                                     pads)
      return y / counts
    return y / math.prod(self.window_shape)

  def _kernel(self, k, path, ctx):
    if isinstance(k, list):
      raise ValueError(f"{self.name} expects a single input kernel.")
    if not k.spatial:
      raise ValueError(f"{self.name} at {path} needs inputs with spatial axes (n, *spatial, "
                       "channels); its input has none.")
    self._check(k.spatial, path)
    layout.check_kernel(k, self.channel_axis, self.name, path)
    full = not k.diagonal_spatial
    pool = lambda m, b: spatial_ops.pool(m, b, full, self.window_shape, self.strides,
                                         self.padding, self.average, self.normalize_edges)
    spatial = tuple(spatial_ops.out_size(n, w, s, self.padding)
                    for n, w, s in zip(k.spatial, self.window_shape, self.strides))
    cov1 = pool(k.cov1, 1)
    k = k.replace(nngp=pool(k.nngp, 2), ntk=pool(k.ntk, 2), cov1=cov1,
                  cov2=cov1 if k.x1_is_x2 else pool(k.cov2, 1), spatial=spatial)
    if k.mask1 is None:
      return k
    mask = lambda m: center_mask(m, tuple(range(1, m.ndim)), self.window_shape, self.strides,
                                 self.padding)
    mask1 = mask(k.mask1)
    return k.replace(mask1=mask1, mask2=mask1 if k.x1_is_x2 else mask(k.mask2)).remask()

  # Masked inputs (neural-tangents' AvgPool, SumPool): masked entries enter the window
  # sums as zeros, which are divided by the window size as unmasked ones are; an output
  # is masked where its window's center is, and its covariances are then zeroed.
  def _supports_mask(self):
    return True

  def _mask_out(self, mask, shape, path):
    shape = tuple(shape)
    c = layout.channel_index(shape, self.channel_axis, self.name, path)
    mask = jnp.all(mask, axis=c, keepdims=True)
    mask = layout.to_channels_last(jnp.broadcast_to(mask, shape[:c] + (1,) + shape[c + 1:]), c)
    mask = center_mask(mask, tuple(range(1, mask.ndim - 1)), self.window_shape, self.strides,
                       self.padding)
    return layout.from_channels_last(mask, c)


class AvgPoolLayer(_Pool):
  name = "AvgPool"


class SumPoolLayer(_Pool):
  name = "SumPool"
  average = False


def AvgPool(window_shape, strides=None, padding: str = "VALID",  # pylint: disable=invalid-name
            normalize_edges: bool = False, batch_axis: int = 0,
            channel_axis: int = -1) -> AvgPoolLayer:
  """Average pooling (neural_tangents.stax.AvgPool); kernel: the window-pair mean (Novak et al. 2019, Sec. 3.1).

  ``normalize_edges``: with SAME padding divide by the number of non-padded entries of
  each window instead of its size. ``strides=None`` means 1.
  """
  return AvgPoolLayer(window_shape, strides, padding, normalize_edges, batch_axis,
                      channel_axis)


def SumPool(window_shape, strides=None, padding: str = "VALID",  # pylint: disable=invalid-name
            batch_axis: int = 0, channel_axis: int = -1) -> SumPoolLayer:
  """Sum pooling (neural_tangents.stax.SumPool)."""
  return SumPoolLayer(window_shape, strides, padding, False, batch_axis, channel_axis)


@dataclasses.dataclass(frozen=True)
class GlobalPoolLayer(Layer):
  """Mean (or sum) over every spatial axis; the spatial axes are removed."""
  average: bool = True
  batch_axis: int = 0
  channel_axis: int = -1

  requirements = Requirements(full_spatial=True, spatial=True)
  _drops_spatial = True

  @property
  def name(self):
    return "GlobalAvgPool" if self.average else "GlobalSumPool"

  def __post_init__(self):
    layout.check_axes(self.batch_axis, self.channel_axis, self.name)

  def _shape(self, shape, path):
    _, c = _spatial_of(shape, self.name, path, self.channel_axis)
    return (shape[0], shape[c])

  def _init(self, key, shape, path, ctx, sampler, dtype):
    return self._shape(tuple(shape), path), ()

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    _, c = _spatial_of(x.shape, self.name, path, self.channel_axis)
    axes = tuple(i for i in range(1, x.ndim) if i != c)
    return jnp.mean(x, axes) if self.average else jnp.sum(x, axes)

  def _kernel(self, k, path, ctx):
    """The mean over all position pairs (Novak et al. 2019, Sec. 3.1; Arora et al. 2019, eq. 8)."""
    if isinstance(k, list):
      raise ValueError(f"{self.name} expects a single input kernel.")
    if not k.spatial:
      raise ValueError(f"{self.name} at {path} needs inputs with spatial axes (n, *spatial, "
                       "channels); its input has none.")
    if k.diagonal_spatial:
      raise ValueError(f"{self.name} at {path} needs the full spatial covariance.")
    layout.check_kernel(k, self.channel_axis, self.name, path)
    k = k.replace(channel_axis=-1)  # (n, channels)
    if k.mask1 is not None:
      return self._kernel_masked(k)
    f = lambda m, b: spatial_ops.spatial_mean(m, b, self.average)
    cov1 = f(k.cov1, 1)
    return k.replace(nngp=f(k.nngp, 2), ntk=f(k.ntk, 2), cov1=cov1,
                     cov2=cov1 if k.x1_is_x2 else f(k.cov2, 1), spatial=(),
                     diagonal_spatial=False)

  def _kernel_masked(self, k):
    """Masked inputs (neural-tangents' GlobalAvgPool): the mean over the pairs of
    unmasked positions only (the sum over all pairs, whose masked entries are zero,
    divided by the number of unmasked pairs, at least 1); a point is masked when all
    its positions are. GlobalSumPool sums all pairs."""
    m11, m12, m22 = k.mask_products()

    def pool(a, m, b):
      if a is None or a.ndim <= b:
        return a
      axes = tuple(range(b, a.ndim))
      total = jnp.sum(a, axes)
      if not self.average:
        return total
      count = jnp.sum(~jnp.broadcast_to(m, a.shape), axes)
      return total / jnp.maximum(count, 1).astype(a.dtype)

    cov1 = pool(k.cov1, m11, 1)
    axes = tuple(range(1, k.mask1.ndim))
    mask1 = jnp.all(k.mask1, axes)
    return k.replace(nngp=pool(k.nngp, m12, 2), ntk=pool(k.ntk, m12, 2), cov1=cov1,
                     cov2=cov1 if k.x1_is_x2 else pool(k.cov2, m22, 1), spatial=(),
                     diagonal_spatial=False, mask1=mask1,
                     mask2=mask1 if k.x1_is_x2 else jnp.all(k.mask2, axes))

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, x, mask, path, ctx):
    """neural-tangents' masked global pooling: the mean over unmasked positions (sum of
    the zeroed inputs over the count of unmasked ones, at least 1); masked where every
    position is."""
    _, c = _spatial_of(x.shape, self.name, path, self.channel_axis)
    x = zero_masked(x, mask)
    axes = tuple(i for i in range(1, x.ndim) if i != c)
    total = jnp.sum(x, axes)
    mask = jnp.broadcast_to(mask, x.shape[:1] + mask.shape[1:])
    out_mask = jnp.all(mask, axes)
    if not self.average:
      return total, out_mask
    count = jnp.sum(~jnp.broadcast_to(mask, x.shape), axes)
    return total / jnp.maximum(count, 1).astype(x.dtype), out_mask


def GlobalAvgPool(batch_axis: int = 0, channel_axis: int = -1) -> GlobalPoolLayer:  # pylint: disable=invalid-name
  """Global average pooling (neural_tangents.stax.GlobalAvgPool)."""
  return GlobalPoolLayer(True, batch_axis, channel_axis)


def GlobalSumPool(batch_axis: int = 0, channel_axis: int = -1) -> GlobalPoolLayer:  # pylint: disable=invalid-name
  """Global sum pooling (neural_tangents.stax.GlobalSumPool)."""
  return GlobalPoolLayer(False, batch_axis, channel_axis)


@dataclasses.dataclass(frozen=True)
class FlattenLayer(Layer):
  """All non-batch axes as one feature axis."""
  batch_axis: int = 0
  batch_axis_out: int = 0

  _drops_spatial = True

  def __post_init__(self):
    if self.batch_axis != 0 or self.batch_axis_out not in (0, -2):
      raise ValueError(f"Flatten: batch_axis and batch_axis_out must be 0, got "
                       f"{self.batch_axis!r} and {self.batch_axis_out!r}.")

  def _shape(self, shape, path):
    return (shape[0], int(np.prod(shape[1:])))

  def _init(self, key, shape, path, ctx, sampler, dtype):
    return self._shape(tuple(shape), path), ()

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    return x.reshape(x.shape[0], -1)

  def _kernel(self, k, path, ctx):
    """The mean over positions of the equal-position covariances (Novak et al. 2019, Sec. 3.1)."""
    if isinstance(k, list):
      raise ValueError("Flatten expects a single input kernel.")
    if not k.spatial:
      return k
    n, full = len(k.spatial), not k.diagonal_spatial
    f = lambda m, b: spatial_ops.trace_mean(m, b, n, full)
    cov1 = f(k.cov1, 1)
    k = k.replace(nngp=f(k.nngp, 2), ntk=f(k.ntk, 2), cov1=cov1,
                  cov2=cov1 if k.x1_is_x2 else f(k.cov2, 1), spatial=(),
                  diagonal_spatial=False, width=k.width * math.prod(k.spatial),
                  is_gaussian=False, channel_axis=-1)
    if k.mask1 is None:
      return k
    # Masked inputs (neural-tangents' Flatten): masked positions enter the mean as zeros;
    # a point is masked (for the next layer) when all its positions are.
    axes = tuple(range(1, k.mask1.ndim))
    mask1 = jnp.all(k.mask1, axes)
    return k.replace(mask1=mask1, mask2=mask1 if k.x1_is_x2 else jnp.all(k.mask2, axes))

  def _supports_mask(self):
    return True

  def _mask_out(self, mask, shape, path):
    return jnp.broadcast_to(mask, shape).reshape(shape[0], -1)


def Flatten(batch_axis: int = 0, batch_axis_out: int = 0) -> FlattenLayer:  # pylint: disable=invalid-name
  """Flattens all non-batch axes (neural_tangents.stax.Flatten)."""
  return FlattenLayer(batch_axis, batch_axis_out)
