"""Transposed convolution (fractionally strided), scaled by a `Parameterization`."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from kernels.kernel import Requirements
from kernels.stax import spatial_ops
from kernels.stax.conv import Conv


def _transpose_size(size, window, stride, padding):
  """Output length of ``jax.lax.conv_transpose`` along one axis (CIRCULAR: SAME's)."""
  pad = "SAME" if padding == "CIRCULAR" else padding
  x = jax.ShapeDtypeStruct((1, 1, size), jnp.float32)
  w = jax.ShapeDtypeStruct((window, 1, 1), jnp.float32)
  out = jax.eval_shape(lambda a, b: jax.lax.conv_transpose(
      a, b, (stride,), pad, dimension_numbers=("NCH", "HIO", "NCH")), x, w)
  return out.shape[-1]


def circular_fold(x, axis: int, size: int):
  """neural-tangents' CIRCULAR transpose padding along ``axis``: each position gathers the
  entries a multiple of ``size`` away (within ``ceil(L/size)//2`` periods), then the
  centre ``size`` positions are kept."""
  length = x.shape[axis]
  half = int(np.ceil(length / size)) // 2
  padded = jnp.pad(x, [(0, 0)] * axis + [(half * size, half * size)] +
                   [(0, 0)] * (x.ndim - axis - 1))
  total = None
  for j in range(-half, half + 1):
    part = jax.lax.slice_in_dim(padded, (half + j) * size, (half + j) * size + length,
                                axis=axis)
    total = part if total is None else total + part
  lo = (length - size) // 2
  return jax.lax.slice_in_dim(total, lo, lo + size, axis=axis) if length != size else total


@dataclasses.dataclass(frozen=True)
class ConvTranspose(Conv):
  """ConvTranspose(out_chan, filter_shape, strides, padding, W_std, b_std,
  dimension_numbers, parameterization) (neural_tangents.stax.ConvTranspose):
  ``y = w_mult conv_transpose(x, W) + b_mult b`` with ``jax.lax.conv_transpose``.

  The input is dilated by the strides and padded, then convolved with stride 1, so the
  kernel is `Conv`'s window-diagonal mean over the dilated, padded covariance (Novak et
  al. 2019, eq. 7, on ``lhs_dilation``): ``K'(o, o') = |w|^-1 sum_t K_z(o + t, o' + t)``.
  ``CIRCULAR`` is VALID followed by neural-tangents' periodic fold to SAME's length, on
  both positions of each pair; it mixes positions, so it needs the full covariance.
  Fan-in ``in_channels * prod(filter_shape)`` as for `Conv`.
  """

  @property
  def requirements(self):  # pylint: disable=invalid-overridden-method
    return Requirements(spatial=True, full_spatial=self.padding == "CIRCULAR")

  def _check_spatial(self, spatial, where):
    n = len(self.filter_shape)
    if len(spatial) != n:
      raise ValueError(f"ConvTranspose at {where}: filter_shape {self.filter_shape} has {n} "
                       f"spatial axes but its input has {len(spatial)} (spatial shape "
                       f"{tuple(spatial)}).")
    letters = [c for c in self._specs[0] if c not in "NC"]
    fs, st = self._filter_for(letters)
    return letters, fs, st

  def _out_size(self, size, window, stride):
    return _transpose_size(size, window, stride, self.padding)

  def _conv_kernel(self, m, batch_ndim, full, windows, strides):
    if m is None or m.ndim == 0:
      return m
    pad = "VALID" if self.padding == "CIRCULAR" else self.padding
    n = len(windows)
    for i, (w, s) in enumerate(zip(windows, strides)):
      axes = spatial_ops.position_axes(m.ndim, batch_ndim, n, full)[i]
      k = len(axes)
      moved = jnp.moveaxis(m, axes, tuple(range(m.ndim - k, m.ndim)))
      pre = moved.shape[:-k]
      flat = moved.reshape((-1, 1) + moved.shape[-k:])
      rhs = (jnp.eye(w, dtype=m.dtype) if k == 2 else jnp.ones((w,), m.dtype)) / w
      rhs = rhs.reshape((w,) * k + (1, 1))
      sp = "HW"[:k] if k == 2 else "H"
      out = jax.lax.conv_transpose(flat, rhs, (s,) * k, pad,
                                   dimension_numbers=("NC" + sp, sp + "IO", "NC" + sp))
      out = out.reshape(pre + out.shape[-k:])
      if self.padding == "CIRCULAR":
        size = _transpose_size(m.shape[axes[0]], w, s, "SAME")
        for a in range(out.ndim - k, out.ndim):
          out = circular_fold(out, a, size)
      m = jnp.moveaxis(out, tuple(range(m.ndim - k, m.ndim)), axes)
    return m

  # Masked inputs (neural-tangents' ConvTranspose): an output is masked where any input
  # position of its window is (the transposed convolution of the mask with a filter of
  # ones is nonzero there); masked covariances are zeroed. Its mask of a CIRCULAR output
  # (transposed VALID, then folded) is not defined: such layers refuse masks.
  def _supports_mask(self):
    return self.padding != "CIRCULAR"

  def _window_mask(self, mask, axes, windows, strides):
    m = mask.astype(jnp.float32)
    for a, w, s in zip(axes, windows, strides):  # a filter of ones is separable
      moved = jnp.moveaxis(m, a, -1)
      flat = moved.reshape((-1, 1, moved.shape[-1]))
      out = jax.lax.conv_transpose(flat, jnp.ones((w, 1, 1), m.dtype), (s,), self.padding,
                                   dimension_numbers=("NCH", "HIO", "NCH"))
      m = jnp.moveaxis(out.reshape(moved.shape[:-1] + out.shape[-1:]), -1, a)
    return m > 0

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    W, b = params
    lhs, rhs, out = self._specs
    c_in = W.shape[rhs.index("I")]
    self._check_input(x, c_in, path)
    s = self.scales(self.fan_in(c_in), path, ctx)
    pad = "VALID" if self.padding == "CIRCULAR" else self.padding
    y = jax.lax.conv_transpose(x, W, self.strides, pad, dimension_numbers=(lhs, rhs, out))
    if self.padding == "CIRCULAR":
      rhs_sp = [c for c in rhs if c not in "IO"]
      for c, w, st in zip(rhs_sp, self.filter_shape, self.strides):
        size = _transpose_size(x.shape[lhs.index(c)], w, st, "SAME")
        y = circular_fold(y, out.index(c), size)
    return self._output(y, s, b, path, probes)

