"""Global self-attention over all spatial positions (Hron et al. 2020, "Infinite attention")."""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from kernels import parameterization as pz
from kernels import validation
from kernels.kernel import Requirements, place_mask, zero_masked
from kernels.stax import layout
from kernels.stax.layer import Layer

MECHANISMS = ("SOFTMAX", "IDENTITY", "ABS", "RELU")
_NEG_INF = -1e20  # neural-tangents' logit of a masked key (softmax of -inf would be NaN)
POS_EMB_TYPES = ("NONE", "SUM", "CONCAT")


def _mechanism_fn(name):
  return {"SOFTMAX": None, "IDENTITY": lambda x: x, "ABS": jnp.abs,
          "RELU": lambda x: jnp.maximum(x, 0.0)}[name]


def _pos_emb_cov(shape, p_norm, decay_fn, dtype):
  """Covariance of positional embeddings, positions side by side per axis: the
  identity (one-hot embeddings) or ``decay_fn(sum_axes |i - j|^p)``."""
  ndim = len(shape)
  if decay_fn is None:
    size = int(np.prod(shape))
    r = np.eye(size).reshape(tuple(shape) * 2)
    perm = [a for i in range(ndim) for a in (i, ndim + i)]
    return jnp.asarray(np.transpose(r, perm), dtype)
  r = jnp.zeros((1,) * (2 * ndim), dtype)
  for axis in range(ndim):
    d = jnp.arange(shape[axis], dtype=dtype)
    pd = jnp.abs(d[:, None] - d[None, :]) ** p_norm
    r = r + pd.reshape((1,) * (2 * axis) + pd.shape + (1,) * (2 * (ndim - axis - 1)))
  return jnp.asarray(decay_fn(r), dtype)


@dataclasses.dataclass(frozen=True)
class GlobalSelfAttentionLayer(Layer):
  """Multi-head self-attention over the flattened spatial positions (neural_tangents.stax.GlobalSelfAttention).

  Under parameterizations whose logits scale as ``1/sqrt(n_chan_key)`` (``"ntk"``,
  ``"standard"``: ``attention_exponent`` 1/2) the layer is neural-tangents' own:
  ``linear_scaling=True`` ties queries to keys and scales logits by ``1/n_chan_key``,
  giving a kernel for every mechanism; ``False`` scales by ``1/sqrt(n_chan_key)``, whose
  limit is known in closed form only for ``IDENTITY`` (Hron et al. 2020, Thm. 3, eq. 13).

  Under ``"mup"`` (``attention_exponent`` 1) queries and keys are independent and logits
  are scaled by `kernels.parameterization.attention_scale`, ``1/n_chan_key`` (Yang et al.
  2022, "Tensor Programs V", Sec. 4); ``linear_scaling`` is then not read. The logits
  ``q.k / d`` are sums of ``d`` independent products, ``O(d^-1/2)``, so at infinite width
  they vanish: the attention weights are the mechanism at 0, uniform averaging over all
  positions for ``SOFTMAX`` and zero for ``IDENTITY``, ``RELU`` and ``ABS``. The query and
  key weights then have no NTK contribution (``O(1/d)``); values and output projection
  contribute as under linear scaling. Weights are read with neural-tangents' NTK
  scaling and unit learning rates under every parameterization.
  """
  n_chan_out: int
  n_chan_key: int
  n_chan_val: int
  n_heads: int
  linear_scaling: bool = True
  W_key_std: float = 1.0
  W_value_std: float = 1.0
  W_query_std: float = 1.0
  W_out_std: float = 1.0
  b_std: Optional[float] = None
  attention_mechanism: str = "SOFTMAX"
  pos_emb_type: str = "NONE"
  pos_emb_p_norm: float = 2
  pos_emb_decay_fn: Optional[Callable] = None
  n_chan_pos_emb: Optional[int] = None
  W_pos_emb_std: float = 1.0
  val_pos_emb: bool = False
  batch_axis: int = 0
  channel_axis: int = -1
  parameterization: Union[str, pz.Parameterization] = "ntk"

  requirements = Requirements(full_spatial=True, spatial=True)

  def __post_init__(self):
    for f in ("n_chan_out", "n_chan_key", "n_chan_val", "n_heads"):
      validation.check_positive_int(getattr(self, f), f)
    for f in ("W_key_std", "W_value_std", "W_query_std", "W_out_std", "W_pos_emb_std"):
      object.__setattr__(self, f, validation.check_nonnegative(getattr(self, f), f))
    object.__setattr__(self, "b_std",
                       validation.check_nonnegative(self.b_std, "b_std", allow_none=True))
    for f in ("linear_scaling", "val_pos_emb"):
      if not isinstance(getattr(self, f), bool):
        raise TypeError(f"{f} must be a bool, got {getattr(self, f)!r}.")
    mech = str(self.attention_mechanism).upper()
    if mech not in MECHANISMS:
      raise ValueError(f"attention_mechanism must be one of {MECHANISMS}, got "
                       f"{self.attention_mechanism!r}.")
    object.__setattr__(self, "attention_mechanism", mech)
    pe = str(self.pos_emb_type).upper()
    if pe not in POS_EMB_TYPES:
      raise ValueError(f"pos_emb_type must be one of {POS_EMB_TYPES}, got {self.pos_emb_type!r}.")
    object.__setattr__(self, "pos_emb_type", pe)
    object.__setattr__(self, "parameterization", pz.get(self.parameterization))
    e = self.parameterization.attention_exponent
    if e < 0.5:
      raise ValueError(f"parameterization {self.parameterization.name} scales attention "
                       f"logits by n_chan_key**-{e:g}: they diverge with width (the "
                       "attention_exponent must be at least 1/2).")
    if not self._vanishing and not self.linear_scaling and mech != "IDENTITY":
      raise ValueError(f"attention_mechanism={mech} with linear_scaling=False has no known "
                       "infinite-width kernel (only IDENTITY does); use linear_scaling=True.")
    if self.n_chan_pos_emb is not None:
      validation.check_positive_int(self.n_chan_pos_emb, "n_chan_pos_emb")
    if self.pos_emb_decay_fn is not None and not callable(self.pos_emb_decay_fn):
      raise TypeError("pos_emb_decay_fn must be callable or None.")
    layout.check_axes(self.batch_axis, self.channel_axis, "GlobalSelfAttention")

  def _channels_at(self, shape, path):
    """The activations' channel axis (``channel_axis`` read in their layout)."""
    if len(shape) < 3:
      raise ValueError(f"GlobalSelfAttention at {path} needs inputs with spatial axes (n, "
                       f"*positions, channels), got shape {tuple(shape)}.")
    return layout.channel_index(shape, self.channel_axis, "GlobalSelfAttention", path)

  @property
  def _vanishing(self) -> bool:
    """Logits scaled faster than ``1/sqrt(d)`` with independent queries: they vanish."""
    return self.parameterization.attention_exponent > 0.5

  @property
  def _tied(self) -> bool:
    """Queries equal keys: neural-tangents' linear scaling."""
    return self.linear_scaling and not self._vanishing

  def _logit_scale(self, c_in):
    if self._vanishing:
      return self.QK_std / c_in * pz.attention_scale(self.parameterization, self.n_chan_key)
    return self.QK_std / (c_in * self.n_chan_key ** (1 if self.linear_scaling else 0.5))

  @property
  def QK_std(self):  # pylint: disable=invalid-name
    return self.W_query_std * self.W_key_std

  @property
  def OV_std(self):  # pylint: disable=invalid-name
    return self.W_out_std * self.W_value_std

  def _check_spatial(self, shape, path):
    if len(shape) < 3:
      raise ValueError(f"GlobalSelfAttention at {path} needs inputs with spatial axes (n, "
                       f"*positions, channels), got shape {tuple(shape)}.")
    self._check_pos_channels(shape[-1], path)

  def _check_pos_channels(self, c_in, path):
    """A summed positional embedding has the input's channels (else no network has it)."""
    if (self.pos_emb_type == "SUM" and self.n_chan_pos_emb is not None and c_in is not None
        and self.n_chan_pos_emb != c_in):
      raise ValueError(f"GlobalSelfAttention at {path}: n_chan_pos_emb={self.n_chan_pos_emb} "
                       f"with pos_emb_type='SUM' must equal the input's {c_in} channels (or "
                       "be None).")

  # ---- finite network -----------------------------------------------------
  def _flow(self, tags, path, roles):
    if isinstance(tags, list):
      raise ValueError("GlobalSelfAttention expects a single input.")
    return frozenset([path])  # its weights end every path from the data

  def _shape(self, shape, path):
    c = self._channels_at(shape, path)
    shape = layout.shape_to_channels_last(shape, c)
    self._check_spatial(shape, path)
    return layout.shape_from_channels_last(tuple(shape[:-1]) + (self.n_chan_out,), c)

  def _n_pos(self, c_in):
    return c_in if self.n_chan_pos_emb is None else self.n_chan_pos_emb

  def _init(self, key, shape, path, ctx, sampler, dtype):
    shape = tuple(shape)
    out = self._shape(shape, path)
    shape = layout.shape_to_channels_last(shape, self._channels_at(shape, path))
    kq, kk, kv, ko, kb, kp = jax.random.split(key, 6)
    c_keys = c_vals = shape[-1]
    pos_emb = None
    if self.pos_emb_type != "NONE":
      pos_emb = sampler(kp, path, "pos_emb", (1,) + shape[1:-1] + (self._n_pos(shape[-1]),),
                        1.0, dtype)
      if self.pos_emb_type == "CONCAT":
        c_keys += self._n_pos(shape[-1])
        if self.val_pos_emb:
          c_vals += self._n_pos(shape[-1])
    h = self.n_heads
    K = sampler(kk, path, "W_key", (h, c_keys, self.n_chan_key), 1.0, dtype)
    V = sampler(kv, path, "W_value", (h, c_vals, self.n_chan_val), 1.0, dtype)
    O = sampler(ko, path, "W_out", (self.n_chan_val * h, self.n_chan_out), 1.0, dtype)
    Q = None if self._tied else sampler(kq, path, "W_query",
                                                 (h, c_keys, self.n_chan_key), 1.0, dtype)
    b = None if self.b_std is None else sampler(kb, path, "b", (self.n_chan_out,), 1.0, dtype)
    return out, (Q, K, V, O, b, pos_emb)

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    """neural-tangents' finite attention (NTK parameterization); linear scaling ties
    queries to keys."""
    c = self._channels_at(x.shape, path)
    return layout.from_channels_last(
        self._forward(params, layout.to_channels_last(x, c), path, None), c)

  def _supports_mask(self):
    return True

  def _apply_masked(self, params, x, mask, path, ctx):
    """Masked inputs (neural-tangents' GlobalSelfAttention; Hron et al. 2020, Sec. 3): no
    query attends to a masked key (its logit is -1e20 for SOFTMAX, 0 for the other
    mechanisms), masked positions get no positional embedding, and a position is masked
    when all its channels are."""
    c = self._channels_at(x.shape, path)
    mask = jnp.all(mask, axis=c, keepdims=True)
    x, m = (layout.to_channels_last(a, c) for a in (zero_masked(x, mask), mask))
    return layout.from_channels_last(self._forward(params, x, path, m), c), mask

  def _forward(self, params, x, path, mask):
    Q, K, V, O, b, pos_emb = params
    self._check_spatial(x.shape, path)
    n, spatial = x.shape[0], x.shape[1:-1]
    x_val = None
    if pos_emb is not None:
      pe = pos_emb
      if self.pos_emb_decay_fn is not None:
        r = _pos_emb_cov(spatial, self.pos_emb_p_norm, self.pos_emb_decay_fn, x.dtype)
        size = int(np.prod(spatial))
        nd = len(spatial)
        unz = jnp.transpose(r, [2 * i for i in range(nd)] + [2 * i + 1 for i in range(nd)])
        L = jnp.linalg.cholesky(unz.reshape(size, size)).reshape(unz.shape)
        pe = jnp.tensordot(L, pe, (tuple(range(nd, 2 * nd)), tuple(range(1, nd + 1))))
        pe = jnp.moveaxis(pe, tuple(range(nd)), tuple(range(1, nd + 1)))
      if mask is not None:
        pe = zero_masked(pe, mask)
      pe = pe * self.W_pos_emb_std
      if self.pos_emb_type == "SUM":
        x_val = None if self.val_pos_emb else x
        x = x + pe
      else:
        x_val = None if self.val_pos_emb else x
        pe = jnp.broadcast_to(pe, x.shape[:-1] + (pe.shape[-1],))
        x = jnp.concatenate([x, pe], axis=-1)
    flat = x.reshape(n, -1, x.shape[-1])
    dot = lambda m, inp: jnp.moveaxis(jnp.dot(inp, m), 2, 0)  # (heads, n, positions, c)
    if x_val is not None:
      vflat = x_val.reshape(n, -1, x_val.shape[-1])
      values, c_in = dot(V, vflat), vflat.shape[-1]
    else:
      values, c_in = dot(V, flat), flat.shape[-1]
    keys = dot(K, flat)
    queries = keys if self._tied else dot(Q, flat)
    g = jnp.matmul(queries, jnp.moveaxis(keys, -1, -2))
    g = g * self._logit_scale(flat.shape[-1])
    if mask is not None:
      keys_masked = jnp.broadcast_to(mask, x.shape[:-1] + (1,)).reshape(1, n, 1, -1)
      g = jnp.where(keys_masked, _NEG_INF if self.attention_mechanism == "SOFTMAX" else 0.0, g)
    g = jax.nn.softmax(g, axis=-1) if self.attention_mechanism == "SOFTMAX" else \
        _mechanism_fn(self.attention_mechanism)(g)
    heads = jnp.moveaxis(jnp.matmul(g, values), 0, -1)
    heads = heads.reshape(heads.shape[:-2] + (-1,))
    y = jnp.matmul(heads, O) * (self.OV_std / math.sqrt(self.n_chan_val * self.n_heads * c_in))
    y = y.reshape((n,) + tuple(spatial) + (self.n_chan_out,))
    if b is not None:
      y = y + self.b_std * b
    return y

  # ---- kernel -------------------------------------------------------------
  def _kernel(self, k, path, ctx):
    """Hron et al. 2020 (Thm. 3, eq. 10 and 13), with neural-tangents' interpolation of
    positional-embedding covariances."""
    if isinstance(k, list):
      raise ValueError("GlobalSelfAttention expects a single input kernel.")
    if not k.spatial:
      raise ValueError(f"GlobalSelfAttention at {path} needs inputs with spatial axes (n, "
                       "*positions, channels); its input has none.")
    layout.check_kernel(k, self.channel_axis, "GlobalSelfAttention", path)
    if k.diagonal_spatial:
      raise ValueError(f"GlobalSelfAttention at {path} needs the full spatial covariance.")
    self._check_pos_channels(k.width, path)
    nd = len(k.spatial)
    dtype = k.nngp.dtype
    ntk_in = None if k.ntk is None else jnp.broadcast_to(k.ntk, k.nngp.shape)
    m11, m12, m22 = k.mask_products()
    if self.pos_emb_type != "NONE":
      r = _pos_emb_cov(k.spatial, self.pos_emb_p_norm, self.pos_emb_decay_fn, dtype)
      r11, r12 = r[None], r[None, None]
      r22 = r11
      if m11 is not None:  # no embedding at masked positions
        zero = jnp.zeros((), dtype)
        r11, r12, r22 = (jnp.where(m, zero, rr) for m, rr in ((m11, r11), (m12, r12), (m22, r22)))
      w_in, w_pe = 1.0, self.W_pos_emb_std ** 2
      if self.pos_emb_type == "CONCAT":
        c, cp = k.width, self._n_pos(k.width)
        w_in, w_pe = w_in * c / (c + cp), w_pe * cp / (c + cp)
      mix = lambda a, rr: w_in * a + w_pe * rr
    else:
      r11 = r12 = r22 = None
      mix = lambda a, rr: a
    cov1_i = mix(k.cov1, r11)
    cov2_i = cov1_i if k.x1_is_x2 else mix(k.cov2, r22)
    nngp_i = mix(k.nngp, r12)
    ntk_i = None if ntk_in is None else mix(ntk_in, r12)
    b2 = 0.0 if self.b_std is None else self.b_std ** 2
    affine = lambda a, std: std ** 2 * a + b2
    if self.linear_scaling or self._vanishing:
      g1 = self._weights(cov1_i, nd, k.mask1)
      g2 = g1 if k.x1_is_x2 else self._weights(cov2_i, nd, k.mask2)
      vp = self.val_pos_emb
      cov1 = affine(_weigh(cov1_i if vp else k.cov1, g1, g1, nd, True), self.OV_std)
      cov2 = cov1 if k.x1_is_x2 else affine(_weigh(cov2_i if vp else k.cov2, g2, g2, nd, True),
                                            self.OV_std)
      nngp = affine(_weigh(nngp_i if vp else k.nngp, g1, g2, nd, False), self.OV_std)
      ntk = None
      if ntk_in is not None:
        ntk = affine(_weigh(ntk_i if vp else ntk_in, g1, g2, nd, False), self.OV_std) + \
            2 * (nngp - b2)
    else:  # IDENTITY, 1/sqrt(d) logits
      vp = self.val_pos_emb
      std = self.QK_std * self.OV_std

      def dot(lhs, rhs, batch_ndim):
        axes = tuple(range(batch_ndim, lhs.ndim))
        rhs = lhs if rhs is None else jnp.broadcast_to(rhs, lhs.shape)
        return jnp.sum(lhs * rhs, axis=axes, keepdims=True)

      dot11 = dot(cov1_i, None if vp else k.cov1, 1)
      dot12 = dot(nngp_i, None if vp else k.nngp, 2)
      nngp = affine(dot12 * nngp_i, std)
      cov1 = affine(dot11 * cov1_i, std)
      cov2 = cov1 if k.x1_is_x2 else affine(dot(cov2_i, None if vp else k.cov2, 1) * cov2_i,
                                            std)
      ntk = None
      if ntk_in is not None:
        if vp or self.pos_emb_type == "NONE":
          t = 2 * dot(nngp_i, ntk_i, 2)
        else:
          t = dot(nngp_i, ntk_in, 2) + dot(k.nngp, ntk_i, 2)
        ntk = affine(t * nngp_i + dot12 * (ntk_i + 4 * nngp_i), std)
    k = k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, width=self.n_chan_out,
                  is_gaussian=True, source=path)
    return k if k.mask1 is None else k.remask()

  def _weights(self, cov, nd, mask=None):
    """Attention weights of the infinite network: the mechanism applied to ``QK_std cov``
    (softmax over every key position jointly). Masked keys get the logit -1e20 (SOFTMAX)
    or 0 (the others): no query attends to them (neural-tangents; Hron et al. 2020)."""
    m = jnp.zeros_like(cov) if self._vanishing else cov
    if mask is not None:
      keys = place_mask(mask, 1, 0, True, 1)
      m = jnp.where(keys, _NEG_INF if self.attention_mechanism == "SOFTMAX" else 0.0, m)
    if not self._vanishing:
      m = self.QK_std * m
    if self.attention_mechanism != "SOFTMAX":
      return _mechanism_fn(self.attention_mechanism)(m)
    key_axes = tuple(2 + 2 * i for i in range(nd))
    return jax.nn.softmax(m, axis=key_axes)

  def _lr(self, params, path, ctx, optimizer):
    return jax.tree_util.tree_map(lambda _: 1.0, params)


def _weigh(mat, g1, g2, nd, same_batch):
  """``G1 K G2^T`` over the flattened positions: ``sum g1[a, x, x'] K[a, b, x', y'] g2[b, y, y']``."""
  letters = "cdefghijklmnopqrstuvwxyz"
  q = [letters[4 * i: 4 * i + 4] for i in range(nd)]  # (x, x', y, y') per spatial axis
  g1s = "A" + "".join(t[0] + t[1] for t in q)
  if same_batch:
    g2s = "A" + "".join(t[2] + t[3] for t in q)
    ms = "A" + "".join(t[1] + t[3] for t in q)
    out = "A" + "".join(t[0] + t[2] for t in q)
  else:
    g2s = "B" + "".join(t[2] + t[3] for t in q)
    ms = "AB" + "".join(t[1] + t[3] for t in q)
    out = "AB" + "".join(t[0] + t[2] for t in q)
  return jnp.einsum(f"{g1s},{ms},{g2s}->{out}", g1, mat, g2, optimize=True)


def GlobalSelfAttention(n_chan_out: int, n_chan_key: int, n_chan_val: int, n_heads: int,  # pylint: disable=invalid-name
                        linear_scaling: bool = True, W_key_std: float = 1.0,
                        W_value_std: float = 1.0, W_query_std: float = 1.0,
                        W_out_std: float = 1.0, b_std: Optional[float] = None,
                        attention_mechanism: str = "SOFTMAX", pos_emb_type: str = "NONE",
                        pos_emb_p_norm: float = 2, pos_emb_decay_fn: Optional[Callable] = None,
                        n_chan_pos_emb: Optional[int] = None, W_pos_emb_std: float = 1.0,
                        val_pos_emb: bool = False, batch_axis: int = 0,
                        channel_axis: int = -1,
                        parameterization: Union[str, pz.Parameterization] = "ntk"
                        ) -> GlobalSelfAttentionLayer:
  """Global self-attention (neural_tangents.stax.GlobalSelfAttention, same arguments, and a
  ``parameterization`` whose ``attention_exponent`` scales the logits)."""
  return GlobalSelfAttentionLayer(n_chan_out, n_chan_key, n_chan_val, n_heads, linear_scaling,
                                  W_key_std, W_value_std, W_query_std, W_out_std, b_std,
                                  attention_mechanism, pos_emb_type, pos_emb_p_norm,
                                  pos_emb_decay_fn, n_chan_pos_emb, W_pos_emb_std, val_pos_emb,
                                  batch_axis, channel_axis, parameterization)
