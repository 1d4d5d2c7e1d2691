"""ImageResize: linear and nearest-neighbour resizing of the spatial axes."""
from __future__ import annotations

import dataclasses
from typing import Any, Tuple

import jax

from kernels.kernel import Requirements
from kernels.stax import layout
from kernels.stax.layer import Layer

_LINEAR = ("linear", "bilinear", "trilinear", "triangle")
_NEAREST = ("nearest",)


def _method_name(method) -> str:
  name = method.name if isinstance(method, jax.image.ResizeMethod) else str(method)
  return name.lower()


@dataclasses.dataclass(frozen=True)
class ImageResizeLayer(Layer):
  """``jax.image.resize`` of activations ``(n, *spatial, channels)`` to ``shape``, with
  ``-1`` for an axis left unchanged (neural_tangents.stax.ImageResize).

  Linear and nearest resizing are linear maps ``F`` along each spatial axis, separable
  across axes, so the covariance becomes ``F K F^T`` on every pair of position axes:
  the same resize applied to both positions of each pair. The batch and channel axes
  must be left unchanged (``-1``) in the kernel. Other methods (cubic, lanczos) have
  no kernel here, as in neural-tangents.
  """
  shape: Tuple[int, ...]
  method: Any
  antialias: bool = True
  precision: Any = jax.lax.Precision.HIGHEST
  batch_axis: int = 0
  channel_axis: int = -1

  def __post_init__(self):
    try:
      shape = tuple(int(s) for s in self.shape)
    except TypeError as e:
      raise TypeError(f"ImageResize: shape must be a sequence of integers, got "
                      f"{self.shape!r}.") from e
    if any(s != -1 and s < 1 for s in shape):
      raise ValueError(f"ImageResize: shape entries must be positive or -1 (unchanged), got "
                       f"{self.shape!r}.")
    object.__setattr__(self, "shape", shape)
    jax.image.ResizeMethod.from_string(_method_name(self.method))  # ValueError if unknown
    layout.check_axes(self.batch_axis, self.channel_axis, "ImageResize")

  @property
  def requirements(self):  # pylint: disable=invalid-overridden-method
    return Requirements(full_spatial=True)

  def _out(self, in_shape, path):
    if len(in_shape) != len(self.shape):
      raise ValueError(f"ImageResize at {path}: shape {self.shape} has {len(self.shape)} "
                       f"axes but its input has {len(in_shape)} (shape {tuple(in_shape)}).")
    return tuple(s if t == -1 else t for s, t in zip(in_shape, self.shape))

  def _shape(self, shape, path):
    return self._out(tuple(shape), path)

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    return jax.image.resize(x, self._out(x.shape, path), _method_name(self.method),
                            antialias=self.antialias, precision=self.precision)

  def _kernel(self, k, path, ctx):
    if isinstance(k, list):
      raise ValueError("ImageResize expects a single input kernel.")
    name = _method_name(self.method)
    if name not in _LINEAR + _NEAREST:
      raise ValueError(f"ImageResize at {path}: method={self.method!r} has no kernel; only "
                       "linear and nearest resizing are linear maps of the positions.")
    n = len(k.spatial)
    if len(self.shape) != n + 2:
      raise ValueError(f"ImageResize at {path}: shape {self.shape} has {len(self.shape)} axes "
                       f"but its input has {n + 2} (spatial shape {k.spatial}).")
    c = layout.check_kernel(k, self.channel_axis, "ImageResize", path)
    shape = layout.shape_to_channels_last(self.shape, c)  # (the kernel's positions are in order)
    if shape[0] != -1 or shape[-1] != -1:
      raise ValueError(f"ImageResize at {path}: shape {self.shape} resizes the batch or "
                       f"channel axis {self.channel_axis}; the kernel needs -1 (unchanged) "
                       "there.")
    new = tuple(s if t == -1 else t for s, t in zip(k.spatial, shape[1:-1]))
    if new == tuple(k.spatial):
      return k
    if k.diagonal_spatial:
      raise ValueError(f"ImageResize at {path} needs the full spatial covariance.")

    def resize(m, batch):
      if m is None or m.ndim == 0:
        return m
      target = m.shape[:batch] + tuple(s for t in new for s in (t, t))
      return jax.image.resize(m, target, name, antialias=self.antialias,
                              precision=self.precision)

    ntk = None if k.ntk is None else (k.ntk if k.ntk.ndim == 0 else resize(k.ntk, 2))
    cov1 = resize(k.cov1, 1)
    return k.replace(nngp=resize(k.nngp, 2), ntk=ntk, cov1=cov1,
                     cov2=cov1 if k.x1_is_x2 else resize(k.cov2, 1), spatial=new, covs=None)


def ImageResize(shape, method, antialias: bool = True,  # pylint: disable=invalid-name
                precision=jax.lax.Precision.HIGHEST, batch_axis: int = 0,
                channel_axis: int = -1) -> ImageResizeLayer:
  """Resizes the spatial axes (neural_tangents.stax.ImageResize, same arguments)."""
  return ImageResizeLayer(tuple(shape), method, antialias, precision, batch_axis, channel_axis)

