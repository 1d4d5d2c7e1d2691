"""Convolution with weights not shared over positions: a locally connected layer."""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from kernels.stax import spatial_ops
from kernels.stax.conv import Conv


def _embed_diagonal(d, batch_ndim, n_spatial):
  """A full spatial covariance that is ``d`` at equal positions and 0 elsewhere."""
  if d is None or d.ndim == 0:
    return d
  for i in range(n_spatial):
    a = batch_ndim + 2 * i  # the axis of this spatial axis; earlier ones are pairs now
    n = d.shape[a]
    shape = [1] * (d.ndim + 1)
    shape[a], shape[a + 1] = n, n
    d = jnp.expand_dims(d, a + 1) * jnp.eye(n, dtype=d.dtype).reshape(shape)
  return d


@dataclasses.dataclass(frozen=True)
class ConvLocal(Conv):
  """ConvLocal(out_chan, filter_shape, strides, padding, W_std, b_std, dimension_numbers,
  parameterization): a convolution whose filter and bias differ at every output position
  (neural_tangents.stax.ConvLocal; locally connected networks).

  Weights at different positions are independent, so outputs at different positions
  are uncorrelated: the kernel keeps only the spatial diagonal, which is that of `Conv`
  with the same window (Novak et al. 2019, "Bayesian Deep Convolutional Networks with
  Many Channels", Sec. 3.1: the LCN's kernel is the CNN's without pooling), and is 0
  between different positions. Biases are per position (and channel), so they too add
  only on the diagonal. Fan-in, multipliers, learning rates and width multipliers ``s``
  are those of `Conv` (``s_out * out_chan`` channels; neural-tangents 0.6.5's finite
  ConvLocal keeps ``out_chan`` whatever ``s_out``, docs/kernels.md).
  """

  def _w_shape_local(self, shape_in, out_shape):
    lhs, rhs, out = self._specs
    c_in = shape_in[lhs.index("C")]
    it = {c: out_shape[out.index(c)] for c in out if c not in "NC"}
    it.update(I=c_in * math.prod(self.filter_shape), O=self.width)
    return tuple(it[c] for c in rhs)

  def _b_shape(self, out_shape):
    out = self._specs[2]
    return tuple(1 if c == "N" else out_shape[i] for i, c in enumerate(out))

  def _param_shapes(self, in_shape, out_shape, c_in):
    """(W shape, b shape): a filter per output position; a bias per output entry."""
    return self._w_shape_local(in_shape, out_shape), self._b_shape(out_shape)

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    W, b = params
    lhs, rhs, out = self._specs
    c_in = W.shape[rhs.index("I")] // math.prod(self.filter_shape)
    self._check_input(x, c_in, path)
    s = self.scales(self.fan_in(c_in), path, ctx)
    x, pad = self._padded(x)
    y = jax.lax.conv_general_dilated_local(x, W, self.strides, pad, self.filter_shape,
                                           dimension_numbers=(lhs, rhs, out))
    return self._output(y, s, b, path, probes)

  def _kernel(self, k, path, ctx):
    self._check_kernel_input(k, path)
    full = not k.diagonal_spatial
    n = len(k.spatial)
    if full:  # only equal positions matter: the shared convolution of the diagonal
      diag = lambda m, b: spatial_ops.diagonal(m, b, n)
      k = k.replace(nngp=diag(k.nngp, 2), ntk=diag(k.ntk, 2), cov1=diag(k.cov1, 1),
                    cov2=diag(k.cov2, 1), diagonal_spatial=True)
    k = super()._kernel(k, path, ctx)
    if full:
      emb = lambda m, b: _embed_diagonal(m, b, n)
      k = k.replace(nngp=emb(k.nngp, 2), ntk=emb(k.ntk, 2), cov1=emb(k.cov1, 1),
                    cov2=emb(k.cov2, 1), diagonal_spatial=False)
    return k

  def _supports_mask(self):
    return True  # masks as `Conv`'s: an output is masked where its window's center is

  def _lr(self, params, path, ctx, optimizer):
    W, b = params
    fan_in = W.shape[self._specs[1].index("I")]
    s = self.scales(fan_in, path, ctx, optimizer)
    return (s.w_lr, None if b is None else s.b_lr)
