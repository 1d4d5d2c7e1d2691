"""Fully-connected layer whose scaling with width is read from a `Parameterization`."""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple, Union

import jax
import jax.numpy as jnp

from kernels import parameterization as pz
from kernels import validation
from kernels.stax import layout
from kernels.stax.layer import DATA, Context, Layer, Path


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
  """Dense(out_dim, W_std, b_std, batch_axis, channel_axis, parameterization, s):
  ``y = w_mult x W + b_mult b``.

  Multipliers and initial scales follow the layer's role in the network and the
  parameterization (`kernels.parameterization`); ``b_std=None`` means no bias.
  Kernel recursion (Lee et al. 2018, eq. 4; Jacot et al. 2018, Thm. 1), per channel:
  ``nngp' = s_w^2 q + s_b^2`` and ``ntk' = lr_w m_w^2 fan_in q + lr_b m_b^2 + s_w^2 ntk``
  with ``s_w^2 = (m_w std_w)^2 fan_in``, ``s_b^2 = (m_b std_b)^2``.

  ``s = (s_in, s_out)``, the width multipliers of the standard parameterization
  (Sohl-Dickstein et al. 2020, Sec. 3; neural-tangents' ``s``): the layer has
  ``s_out * out_dim`` outputs, its weights have standard deviation
  ``W_std / sqrt(fan_in / s_in)`` and its product is divided by ``sqrt(s_in)``, so
  that the NTK counts ``fan_in / s_in`` inputs: a network whose ``s_in`` equals the
  previous layer's ``s_out`` has the kernels of the network ``s_out`` times narrower.
  """
  out_dim: int
  W_std: float = 1.0
  b_std: Optional[float] = None
  # neural-tangents' Dense arguments, in its order: the batch first, the features on any
  # other axis (``channel_axis=1``: NCHW activations), width multipliers under ``standard``.
  batch_axis: int = 0
  channel_axis: int = -1
  parameterization: Union[str, pz.Parameterization] = "ntk"
  s: Tuple[int, int] = (1, 1)

  def __post_init__(self):
    validation.check_positive_int(self.out_dim, "out_dim")
    layout.check_axes(self.batch_axis, self.channel_axis, "Dense")
    object.__setattr__(self, "W_std", validation.check_nonnegative(self.W_std, "W_std"))
    object.__setattr__(self, "b_std",
                       validation.check_nonnegative(self.b_std, "b_std", allow_none=True))
    object.__setattr__(self, "parameterization", pz.get(self.parameterization))
    object.__setattr__(self, "s", pz.width_multipliers(self.s, self.parameterization, "Dense"))

  @property
  def _fast_path(self):  # (the fused program has channels last)
    return self.channel_axis == -1

  def _channels_at(self, shape, path):
    return layout.channel_index(shape, self.channel_axis, "Dense", path)

  @property
  def width(self) -> int:
    """The number of outputs: ``s_out * out_dim``."""
    return self.s[1] * self.out_dim

  def scales(self, fan_in: int, path: Path, ctx: Context, optimizer: str = "sgd"):
    """The parameterization's scales at ``fan_in / s_in`` inputs, the multiplier divided
    by ``sqrt(s_in)`` (neural-tangents' standard Dense with ``s``)."""
    role = ctx.role(path)
    return self.parameterization.dense_scales(
        fan_in=fan_in, fan_out=self.width, is_input=role.is_input,
        is_readout=role.is_readout, W_std=self.W_std, b_std=self.b_std,
        optimizer=optimizer, s_in=self.s[0])

  def _flow(self, tags, path, roles):
    if isinstance(tags, list):
      raise ValueError("Dense expects a single input; use FanInSum or parallel after FanOut.")
    roles[path] = roles.get(path, False) or (DATA in tags)
    return frozenset([path])

  def _shape(self, shape, path):
    shape = tuple(shape)
    c = self._channels_at(shape, path)
    return shape[:c] + (self.width,) + shape[c + 1:]

  def _init(self, key, shape, path, ctx, sampler, dtype):
    fan_in = shape[self._channels_at(shape, path)]
    s = self.scales(fan_in, path, ctx)
    kw, kb = jax.random.split(key)
    W = sampler(kw, path, "W", (fan_in, self.width), s.w_init, dtype)
    b = None if self.b_std is None else sampler(kb, path, "b", (self.width,), s.b_init, dtype)
    return self._shape(shape, path), (W, b)

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    if self.channel_axis != -1:
      c = self._channels_at(x.shape, path)
      if c != x.ndim - 1:  # (the structured empirical NTK, which probes, takes channels last)
        if probes is not None or record is not None:
          raise ValueError(f"Dense at {path} with channel_axis={self.channel_axis} cannot be "
                           "probed; the empirical NTK uses NTK-vector products for it.")
        y = self._dense(params, layout.to_channels_last(x, c), path, ctx, None, None)
        return layout.from_channels_last(y, c)
    return self._dense(params, x, path, ctx, probes, record)

  def _dense(self, params, x, path, ctx, probes, record):
    """The layer on channels-last ``x``."""
    W, b = params
    if x.shape[-1] != W.shape[0]:
      raise ValueError(f"inputs have {x.shape[-1]} features but the Dense layer at {path} "
                       f"expects {W.shape[0]}.")
    s = self.scales(W.shape[0], path, ctx)
    if record is not None:
      record[path] = x
    y = s.w_mult * (x @ W)
    if b is not None:
      y = y + s.b_mult * b
    if probes is not None:
      y = y + probes[path]
    return y

  def _kernel(self, k, path, ctx):
    if isinstance(k, list):
      raise ValueError("Dense expects a single input kernel.")
    layout.check_kernel(k, self.channel_axis, "Dense", path)
    fan_in = k.width
    s = self.scales(fan_in, path, ctx)
    var_w = (s.w_mult * s.w_init) ** 2 * fan_in
    var_b = 0.0 if self.b_std is None else (s.b_mult * s.b_init) ** 2
    nngp = var_w * k.nngp + var_b
    ntk = None
    if k.ntk is not None:
      ntk = (s.w_lr * s.w_mult ** 2 * fan_in) * k.nngp + var_w * k.ntk
      if self.b_std is not None:
        ntk = ntk + s.b_lr * s.b_mult ** 2
    k = k.replace(nngp=nngp, ntk=ntk, cov1=var_w * k.cov1 + var_b,
                  cov2=var_w * k.cov2 + var_b, width=self.width, is_gaussian=True,
                  source=path)
    return k if k.mask1 is None else k.remask()

  # Masked inputs (neural-tangents' Dense): a position is masked when all its features
  # are; the bias of masked positions is zeroed in the kernel.
  def _supports_mask(self):
    return True

  def _mask_out(self, mask, shape, path):
    return jnp.all(mask, axis=self._channels_at(shape, path), keepdims=True)

  def _lr(self, params, path, ctx, optimizer):
    W, b = params
    s = self.scales(W.shape[0], path, ctx, optimizer)
    return (s.w_lr, None if b is None else s.b_lr)

