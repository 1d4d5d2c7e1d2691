"""The `Kernel` object that infinite-width layers transform.

For fully-connected networks a kernel between inputs ``x1`` (n1 points) and ``x2``
(n2 points) is described by

* ``nngp``  (n1, n2): covariance of the layer's outputs per channel (Neal 1996; Lee et al. 2018, eq. 4),
* ``ntk``   (n1, n2): learning-rate-weighted neural tangent kernel (Jacot et al. 2018, eq. 6),
* ``cov1``  (n1,) and ``cov2`` (n2,): the variances of the same outputs at x1 and x2,

and ``covs``, the variances at the input of every nonlinearity, keyed by its
position (``covs[()]``: the inputs' own variances; no nonlinearity sits at the
root). ``keys1`` (n1, 2) and ``keys2`` (n2, 2) are 64-bit hashes of the input rows: a pair with equal keys is one input twice, and every layer gives it exactly
the diagonal value (correlation exactly 1), whatever the rounding of the Gram
product, the batch tiling or the depth. Kernels are computed in two passes: a *diagonal* pass (``diagonal=True``,
vectors only, O(n L)) that fills ``covs``, then the (n1, n2) pass that reads them.
Separating the passes keeps the compiled program linear in depth (otherwise the
compiler re-derives every variance inside every fused matrix loop).

Static bookkeeping makes composition exact: the channel count ``width``
(needed by parameterizations whose NTK depends on widths), whether the outputs are
mean-zero Gaussian (``is_gaussian``: only then does a nonlinearity have a kernel),
and ``source``, the layer whose independent weights produced the outputs (two
branches with the same source are correlated and cannot be summed as independent).

Inputs with spatial axes (images, sequences: ``(n, *spatial, channels)``) give
kernels that carry the spatial structure, as neural-tangents' do (Novak et al.
2019, "Bayesian Deep Convolutional Networks", eq. 7):

* ``spatial``: the spatial shape ``(S_1, ..., S_k)`` (empty for fully-connected kernels);
* ``diagonal_spatial=False``: the full spatial covariance, ``nngp`` and ``ntk`` of
  shape ``(n1, n2, S_1, S_1, ..., S_k, S_k)`` (the two positions of each axis side by
  side, neural-tangents' layout) and ``cov1`` ``(n1, S_1, S_1, ...)``;
* ``diagonal_spatial=True``: only equal positions, ``(n1, n2, S_1, ..., S_k)`` and
  ``cov1`` ``(n1, S_1, ..., S_k)``, enough for networks whose spatial layers never
  mix positions before a `Flatten` (each layer's `Requirements`).

The batch diagonal (``cov1``, ``cov2``) is always carried: every nonlinearity needs
the variances of its inputs.

Masked inputs (neural-tangents' ``mask_constant``; variable-length sequences padded
with a constant) carry ``mask1`` ``(n1, S_1, ..., S_k)`` and ``mask2``, True at masked
positions (``(n,)`` once the spatial axes are dropped: True where every position was
masked). Every layer maps them to the masks of its outputs and zeroes the covariances
between pairs with a masked member (`Kernel.remask`), as neural-tangents does
(``Kernel.mask``, ``supports_masking``). Without masks they are None and cost nothing.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Hashable, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Kernel:
  """Infinite-width kernels between two batches of inputs (a JAX pytree)."""
  nngp: jax.Array
  ntk: Optional[jax.Array]
  cov1: jax.Array
  cov2: jax.Array
  covs: Optional[dict] = None
  keys1: Optional[jax.Array] = None
  keys2: Optional[jax.Array] = None
  width: int = dataclasses.field(default=1, metadata=dict(static=True))
  is_gaussian: bool = dataclasses.field(default=False, metadata=dict(static=True))
  source: Hashable = dataclasses.field(default="input", metadata=dict(static=True))
  x1_is_x2: bool = dataclasses.field(default=False, metadata=dict(static=True))
  diagonal: bool = dataclasses.field(default=False, metadata=dict(static=True))
  spatial: Tuple[int, ...] = dataclasses.field(default=(), metadata=dict(static=True))
  diagonal_spatial: bool = dataclasses.field(default=False, metadata=dict(static=True))
  # The activations' channel axis in their own layout, counted from the end (-1: channels
  # last; -3 for NCHW); the positions above are the other non-batch axes in order.
  channel_axis: int = dataclasses.field(default=-1, metadata=dict(static=True))
  mask1: Optional[jax.Array] = None
  mask2: Optional[jax.Array] = None

  def replace(self, **changes: Any) -> "Kernel":
    return dataclasses.replace(self, **changes)

  @property
  def shape(self):
    return self.nngp.shape

  def same_inputs(self) -> Optional[jax.Array]:
    """(n1, n2) mask of the pairs that are one input twice (None without keys)."""
    if self.keys1 is None or self.keys2 is None:
      return None
    a, b = self.keys1, self.keys2
    return (a[:, None, 0] == b[None, :, 0]) & (a[:, None, 1] == b[None, :, 1])

  def mask_products(self):
    """``(m11, m12, m22)``: where ``cov1``, ``nngp`` and ``cov2`` pair a masked position
    with any other (logical or of the two positions' masks, broadcastable against the
    arrays; neural-tangents' ``Kernel._get_mask_prods``). None without masks."""
    if self.mask1 is None:
      return None, None, None
    full = not self.diagonal_spatial
    m1, m2 = self.mask1, self.mask2
    m12 = place_mask(m1, 2, 0, full, 0) | place_mask(m2, 2, 1, full, 1 if full else 0)

    def side(m):
      return place_mask(m, 1, 0, True, 0) | place_mask(m, 1, 0, True, 1) if full else m
    m11 = side(m1)
    return m11, m12, m11 if self.x1_is_x2 else side(m2)

  def remask(self) -> "Kernel":
    """The kernel with every covariance that involves a masked position set to zero
    (neural-tangents' ``Kernel.mask``); unchanged without masks."""
    if self.mask1 is None:
      return self
    m11, m12, m22 = self.mask_products()
    zero = jnp.zeros((), self.nngp.dtype)
    ntk = self.ntk
    if ntk is not None:
      ntk = jnp.where(m12, zero, jnp.broadcast_to(ntk, self.nngp.shape))
    cov1 = jnp.where(m11, zero, self.cov1)
    return self.replace(nngp=jnp.where(m12, zero, self.nngp), ntk=ntk, cov1=cov1,
                        cov2=cov1 if self.x1_is_x2 else jnp.where(m22, zero, self.cov2))


def place_mask(m: jax.Array, batch_ndim: int, batch_slot: int, full: bool,
               pos_slot: int) -> jax.Array:
  """Reshapes a mask (or any per-point array) ``(n, *spatial)`` to broadcast against a
  kernel array with ``batch_ndim`` batch axes (the points on axis ``batch_slot``) and,
  for the full spatial covariance, on position ``pos_slot`` of each pair of position
  axes."""
  shape = [1] * batch_ndim
  shape[batch_slot] = m.shape[0]
  for s in m.shape[1:]:
    if full:
      pair = [1, 1]
      pair[pos_slot] = s
      shape += pair
    else:
      shape.append(s)
  return m.reshape(shape)


def entry_mask(x: jax.Array, mask_constant) -> jax.Array:
  """Where ``x`` equals ``mask_constant`` (NaN: where ``x`` is NaN), as neural-tangents
  reads ``mask_constant``."""
  c = np.asarray(mask_constant, x.dtype)  # concrete, also under jit
  return jnp.isnan(x) if np.isnan(c) else x == c


def zero_masked(x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """``x`` with its masked entries set to zero (``mask`` broadcasts against ``x``)."""
  if mask is None:
    return x
  return jnp.where(mask, jnp.zeros((), x.dtype), x)


@dataclasses.dataclass(frozen=True)
class MaskedArray:
  """Outputs of ``apply_fn(params, x, mask_constant=c)`` and where they are masked
  (neural-tangents' ``MaskedArray``): ``mask`` broadcasts against ``masked_value``,
  True at masked entries, whose values carry no meaning."""
  masked_value: Any
  mask: Any

  def unmasked(self):
    """The values with masked entries set to zero (neural-tangents' ``unmask_fn``)."""
    return jax.tree_util.tree_map(zero_masked, self.masked_value, self.mask)


jax.tree_util.register_dataclass(MaskedArray, data_fields=["masked_value", "mask"],
                                 meta_fields=[])


jax.tree_util.register_dataclass(
    Kernel,
    data_fields=["nngp", "ntk", "cov1", "cov2", "covs", "keys1", "keys2", "mask1", "mask2"],
    meta_fields=["width", "is_gaussian", "source", "x1_is_x2", "diagonal", "spatial",
                 "diagonal_spatial", "channel_axis"])


@dataclasses.dataclass(frozen=True)
class Requirements:
  """What a layer needs of its input kernel, as data read once by `serial` (the
  counterpart of neural-tangents' ``@requires`` decorators).

  Attributes:
    full_spatial: the layer mixes spatial positions (pooling, attention, a norm over
      spatial axes), so it needs the covariances between different positions.
    spatial: True if the layer needs spatial axes (pooling, attention), None if
      either works.
    gaussian: the layer's kernel needs mean-zero Gaussian inputs (an affine layer
      before it).
  """
  full_spatial: bool = False
  spatial: Optional[bool] = None
  gaussian: bool = False


def spatial_input_kernel(x1: jax.Array, x2: Optional[jax.Array], compute_ntk: bool,
                         diagonal_spatial: bool) -> Kernel:
  """Kernel of raw inputs ``(n, *spatial, c)``: per-channel second moments at every pair
  of positions (Novak et al. 2019, eq. 7 at layer 0), full or spatially diagonal."""
  c = x1.shape[-1]
  spatial = tuple(x1.shape[1:-1])
  k = len(spatial)
  letters = "defghpqrstuvw"
  a_pos, b_pos = letters[:k], letters[k:2 * k]

  def cross(u, v, same_batch):
    if diagonal_spatial:
      spec_out = ("a" if same_batch else "ab") + a_pos
      spec_v = ("a" if same_batch else "b") + a_pos
      return jnp.einsum(f"a{a_pos}c,{spec_v}c->{spec_out}", u, v) * (1.0 / c)
    pairs = "".join(a_pos[i] + b_pos[i] for i in range(k))
    spec_out = ("a" if same_batch else "ab") + pairs
    spec_v = ("a" if same_batch else "b") + b_pos
    return jnp.einsum(f"a{a_pos}c,{spec_v}c->{spec_out}", u, v) * (1.0 / c)

  cov1 = cross(x1, x1, True)
  cov2 = cov1 if x2 is None else cross(x2, x2, True)
  nngp = cross(x1, x1 if x2 is None else x2, False)
  ntk = jnp.zeros((), nngp.dtype) if compute_ntk else None
  return Kernel(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, width=c, is_gaussian=False,
                source="input", x1_is_x2=x2 is None, spatial=spatial,
                diagonal_spatial=diagonal_spatial)


def _fmix32(h: jax.Array) -> jax.Array:
  """The 32-bit finaliser of MurmurHash3: a bijection that mixes every input bit."""
  h = h ^ (h >> 16)
  h = h * jnp.uint32(0x85EBCA6B)
  h = h ^ (h >> 13)
  h = h * jnp.uint32(0xC2B2AE35)
  return h ^ (h >> 16)


def row_keys(x: jax.Array) -> jax.Array:
  """(n, 2) uint32 hashes of the rows of ``x`` (n, d): equal rows, equal keys.

  Keys are sums of position-salted mixes of the rows' bit patterns (two
  independent 32-bit hashes; distinct rows collide with probability ~2^-64).
  ``-0.0`` and ``0.0`` hash alike, as they compare equal.
  """
  x = x.reshape(x.shape[0], -1)
  if x.dtype.itemsize < 4:
    x = x.astype(jnp.float32)
  x = jnp.where(x == 0, jnp.zeros((), x.dtype), x)
  bits = jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(x.shape[0], -1)
  pos = jnp.arange(bits.shape[1], dtype=jnp.uint32)
  keys = []
  for salt in (0x9E3779B9, 0x7F4A7C15):
    salted = bits ^ _fmix32(pos * jnp.uint32(2) + jnp.uint32(salt))
    keys.append(jnp.sum(_fmix32(salted), axis=1, dtype=jnp.uint32))
  return jnp.stack(keys, axis=1)


def gram(x1: jax.Array, x2: Optional[jax.Array]) -> jax.Array:
  """Per-feature second moments ``x1 x2^T / d`` (Lee et al. 2018, eq. 5)."""
  # Times 1/d, not divided by d: a division per entry would end the fused loop of
  # the (n1, n2) pass that follows (see kernels.stax.layer.one_loop).
  return (x1 @ (x1 if x2 is None else x2).T) * (1.0 / x1.shape[-1])


def gram_blocks(x: jax.Array):
  """The upper blocks ``(x_a x_a^T, x_a x_b^T, x_b x_b^T) / d`` of the Gram of the two
  halves of ``x``: 3/4 of the product's work; the lower block is the mirror."""
  h = x.shape[0] // 2
  return gram(x[:h], None), gram(x[:h], x[h:]), gram(x[h:], None)


def _mirror_upper(a: jax.Array, a_t: jax.Array) -> jax.Array:
  upper = jnp.arange(a.shape[0])[:, None] <= jnp.arange(a.shape[0])[None, :]
  return jnp.where(upper, a, a_t)


def symmetric_gram(x: jax.Array, blocks=None) -> jax.Array:
  """The Gram matrix of ``x`` with itself, symmetric exactly: its upper triangle mirrored.

  ``blocks``, optional: `gram_blocks` of ``x`` and their transposes, computed
  beforehand; read contiguously, the transposes cost a pass of 3/4 of the matrix
  instead of a strided read in the fused (n1, n2) loop.
  """
  if blocks is None:
    g = gram(x, None)
    return _mirror_upper(g, g.T)
  (aa, ab, bb), (aa_t, ab_t, bb_t) = blocks
  top = jnp.concatenate([_mirror_upper(aa, aa_t), ab], axis=1)
  bottom = jnp.concatenate([ab_t, _mirror_upper(bb, bb_t)], axis=1)
  return jnp.concatenate([top, bottom], axis=0)


def input_kernel(x1: jax.Array, x2: Optional[jax.Array], compute_ntk: bool,
                 diagonal: bool = False, covs: Optional[dict] = None,
                 grams: Optional[tuple] = None) -> Kernel:
  """Kernel of the raw inputs: per-feature second moments x1 x2^T / d (Lee et al. 2018, eq. 5).

  For x2=None the kernel takes the upper triangle of the Gram product and its mirror
  below (the product's rounding need not be symmetric; see `symmetric_gram`, which
  reads ``grams`` when given).
  """
  d = x1.shape[-1]
  static = dict(width=d, is_gaussian=False, source="input", x1_is_x2=x2 is None)
  if covs and () in covs:  # the diagonal pass's values: one rounding for both passes
    cov1, cov2 = covs[()]
  else:
    cov1 = jnp.sum(x1 * x1, axis=-1) / d
    cov2 = cov1 if x2 is None else jnp.sum(x2 * x2, axis=-1) / d
  if diagonal:
    return Kernel(nngp=cov1, ntk=None, cov1=cov1, cov2=cov2, covs={(): (cov1, cov2)},
                  diagonal=True, **static)
  keys1 = row_keys(x1)
  keys2 = keys1 if x2 is None else row_keys(x2)
  if x2 is not None:
    nngp = gram(x1, x2)
  else:
    nngp = symmetric_gram(x1, grams)
  k = Kernel(nngp=nngp, ntk=None, cov1=cov1, cov2=cov2, covs=covs, keys1=keys1, keys2=keys2,
             **static)
  # One input twice gets the rounding of its own variance: correlation exactly 1.
  nngp = jnp.where(k.same_inputs(), cov1[:, None], nngp)
  ntk = jnp.zeros((), nngp.dtype) if compute_ntk else None  # broadcasts; no (n1, n2) pass
  return k.replace(nngp=nngp, ntk=ntk)
