"""Convolution with weights shared over positions, scaled by a `Parameterization`."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from kernels import parameterization as pz
from kernels import validation
from kernels.kernel import Requirements
from kernels.stax import layout, spatial_ops
from kernels.stax.layer import DATA, Context, Layer, Path

_SPATIAL_LETTERS = "ABDEFGHJKLMPQRSTUVWXYZ"  # neural-tangents' order: no N, C, I, O


def default_dimension_numbers(n: int) -> Tuple[str, str, str]:
  """Channels last, as neural-tangents' default: ``("NHWC", "HWIO", "NHWC")`` for n=2."""
  sp = _SPATIAL_LETTERS[:n]
  return ("N" + sp + "C", sp + "IO", "N" + sp + "C")


def _int_tuple(value, name, n=None, allow_none=False):
  if value is None and allow_none:
    return None
  try:
    t = tuple(value)
  except TypeError as e:
    raise TypeError(f"{name} must be a sequence of positive integers, got {value!r}.") from e
  for v in t:
    validation.check_positive_int(v, name)
  if not t:
    raise ValueError(f"{name} must have at least one entry, got {value!r}.")
  if n is not None and len(t) != n:
    raise ValueError(f"{name} must have {n} entries (one per spatial axis), got {value!r}.")
  return tuple(int(v) for v in t)


def check_padding(padding) -> str:
  if not isinstance(padding, str) or padding.upper() not in spatial_ops.PADDINGS:
    raise ValueError(f"padding must be one of {spatial_ops.PADDINGS}, got {padding!r}.")
  return padding.upper()


@dataclasses.dataclass(frozen=True)
class Conv(Layer):
  """Conv(out_chan, filter_shape, strides, padding, W_std, b_std, dimension_numbers,
  parameterization): ``y = w_mult (x * W) + b_mult b`` (neural_tangents.stax.Conv).

  The fan-in is ``in_channels * prod(filter_shape)`` (the receptive field), and the
  multipliers, initial scales and learning rates follow the layer's role and the
  parameterization exactly as for `Dense`. Kernel (Novak et al. 2019, "Bayesian Deep
  Convolutional Networks with Many Channels", eq. 7; Arora et al. 2019, eq. 7): with
  ``A(K)`` the window-diagonal mean of `spatial_ops.conv`,
  ``nngp' = s_w^2 A(q) + s_b^2`` and ``ntk' = lr_w m_w^2 fan_in A(q) + lr_b m_b^2 + s_w^2 A(ntk)``.
  ``padding``: ``"VALID"``, ``"SAME"`` or ``"CIRCULAR"`` (periodic). ``s = (s_in, s_out)``:
  neural-tangents' width multipliers under the standard parameterization, as for
  `Dense` (``s_out * out_chan`` output channels; the fan-in counts ``in_channels / s_in``).
  """
  out_chan: int
  filter_shape: Tuple[int, ...]
  strides: Optional[Tuple[int, ...]] = None
  padding: str = "VALID"
  W_std: float = 1.0
  b_std: Optional[float] = None
  dimension_numbers: Optional[Tuple[str, str, str]] = None
  parameterization: Union[str, pz.Parameterization] = "ntk"
  s: Tuple[int, int] = (1, 1)

  requirements = Requirements(spatial=True)

  def __post_init__(self):
    validation.check_positive_int(self.out_chan, "out_chan")
    fs = _int_tuple(self.filter_shape, "filter_shape")
    object.__setattr__(self, "filter_shape", fs)
    object.__setattr__(self, "strides",
                       _int_tuple(self.strides, "strides", len(fs), allow_none=True)
                       or (1,) * len(fs))
    object.__setattr__(self, "padding", check_padding(self.padding))
    object.__setattr__(self, "W_std", validation.check_nonnegative(self.W_std, "W_std"))
    object.__setattr__(self, "b_std",
                       validation.check_nonnegative(self.b_std, "b_std", allow_none=True))
    dn = self.dimension_numbers
    if dn is None:
      dn = default_dimension_numbers(len(fs))
    else:
      if (not isinstance(dn, (tuple, list)) or len(dn) != 3
          or not all(isinstance(d, str) for d in dn)):
        raise ValueError(f"dimension_numbers must be three strings such as ('NHWC', 'HWIO', "
                         f"'NHWC'), got {dn!r}.")
      lhs, rhs, out = dn
      sp = [c for c in lhs if c not in "NC"]
      if (sorted(lhs) != sorted(out) or "N" not in lhs or "C" not in lhs
          or sorted(c for c in rhs if c not in "IO") != sorted(sp) or "I" not in rhs
          or "O" not in rhs or len(sp) != len(fs) or len(set(lhs)) != len(lhs)):
        raise ValueError(f"dimension_numbers {dn!r} must name the batch N, channel C and "
                         f"{len(fs)} spatial axes (filter_shape has {len(fs)}) in lhs and "
                         "output, and the same spatial axes with I and O in the filter.")
      dn = tuple(dn)
    object.__setattr__(self, "dimension_numbers", dn)
    object.__setattr__(self, "parameterization", pz.get(self.parameterization))
    object.__setattr__(self, "s", pz.width_multipliers(self.s, self.parameterization,
                                                       type(self).__name__))

  _fast_path = False

  @property
  def _channel_axis_in(self):
    lhs = self._specs[0]
    return -1 if lhs[-1] == "C" else lhs.index("C")

  # ---- geometry -----------------------------------------------------------
  @property
  def _specs(self):
    return self.dimension_numbers

  def _filter_for(self, letters: Sequence[str]):
    """Filter sizes and strides in the order of the given spatial letters."""
    rhs_sp = [c for c in self._specs[1] if c not in "IO"]
    return (tuple(self.filter_shape[rhs_sp.index(c)] for c in letters),
            tuple(self.strides[rhs_sp.index(c)] for c in letters))

  def _out_size(self, size, window, stride):
    return spatial_ops.out_size(size, window, stride, self.padding)

  def _conv_kernel(self, m, batch_ndim, full, windows, strides):
    """The covariance after the layer's spatial map, unscaled (see `spatial_ops.conv`)."""
    return spatial_ops.conv(m, batch_ndim, full, windows, strides, self.padding)

  @property
  def width(self) -> int:
    """The number of output channels: ``s_out * out_chan``."""
    return self.s[1] * self.out_chan

  def fan_in(self, in_channels: int) -> int:
    return in_channels * math.prod(self.filter_shape)

  def scales(self, fan_in: int, path: Path, ctx: Context, optimizer: str = "sgd"):
    """The parameterization's scales, with ``s_in`` as for `Dense`."""
    role = ctx.role(path)
    return self.parameterization.dense_scales(
        fan_in=fan_in, fan_out=self.width, is_input=role.is_input,
        is_readout=role.is_readout, W_std=self.W_std, b_std=self.b_std, optimizer=optimizer,
        s_in=self.s[0])

  def _check_spatial(self, spatial, where):
    n = len(self.filter_shape)
    if len(spatial) != n:
      raise ValueError(f"Conv at {where}: filter_shape {self.filter_shape} has {n} spatial "
                       f"axes but its input has {len(spatial)} (spatial shape {tuple(spatial)}).")
    lhs = self._specs[0]
    letters = [c for c in lhs if c not in "NC"]
    fs, st = self._filter_for(letters)
    for size, w, s, c in zip(spatial, fs, st, letters):
      if self.padding == "VALID" and w > size:
        raise ValueError(f"Conv at {where}: filter_shape {self.filter_shape} is larger than "
                         f"the input's spatial shape {tuple(spatial)} with VALID padding.")
      if s > size:
        raise ValueError(f"Conv at {where}: strides {self.strides} are larger than the "
                         f"input's spatial shape {tuple(spatial)}.")
    return letters, fs, st

  # ---- views --------------------------------------------------------------
  def _flow(self, tags, path, roles):
    if isinstance(tags, list):
      raise ValueError("Conv expects a single input; use FanInSum or parallel after FanOut.")
    roles[path] = roles.get(path, False) or (DATA in tags)
    return frozenset([path])

  def _out_shape(self, shape):
    lhs, rhs, out = self._specs
    if len(shape) != len(lhs):
      raise ValueError(f"Conv expects inputs with {len(lhs)} axes ({lhs}), got shape {shape}.")
    letters = [c for c in lhs if c not in "NC"]
    self._check_spatial([shape[lhs.index(c)] for c in letters], "its input")
    sizes = {"N": shape[lhs.index("N")], "C": self.width}
    fs, st = self._filter_for(letters)
    for c, w, s in zip(letters, fs, st):
      sizes[c] = self._out_size(shape[lhs.index(c)], w, s)
    return tuple(sizes[c] for c in out)

  def _shape(self, shape, path):
    return self._out_shape(tuple(shape))

  def _w_shape(self, in_channels):
    rhs = self._specs[1]
    rhs_sp = [c for c in rhs if c not in "IO"]
    it = {c: w for c, w in zip(rhs_sp, self.filter_shape)}
    it.update(I=in_channels, O=self.width)
    return tuple(it[c] for c in rhs)

  def _param_shapes(self, in_shape, out_shape, c_in):
    """(W shape, b shape): one filter and one bias per output channel, shared by positions."""
    return self._w_shape(c_in), (self.width,)

  def _init(self, key, shape, path, ctx, sampler, dtype):
    shape = tuple(shape)
    out = self._out_shape(shape)
    c_in = shape[self._specs[0].index("C")]
    s = self.scales(self.fan_in(c_in), path, ctx)
    kw, kb = jax.random.split(key)
    w_shape, b_shape = self._param_shapes(shape, out, c_in)
    W = sampler(kw, path, "W", w_shape, s.w_init, dtype)
    b = None if self.b_std is None else sampler(kb, path, "b", b_shape, s.b_init, dtype)
    return out, (W, b)

  def _check_input(self, x, c_in, path):
    """ValueError unless ``x`` has the layer's axes and ``c_in`` channels."""
    lhs = self._specs[0]
    if x.ndim != len(lhs) or x.shape[lhs.index("C")] != c_in:
      raise ValueError(f"inputs of shape {x.shape} do not fit the {type(self).__name__} at "
                       f"{path}: it expects {len(lhs)} axes ({lhs}) with {c_in} channels.")

  def _padded(self, x):
    """(x, padding): CIRCULAR as a wrap-around pad of ``x`` (SAME widths) and VALID."""
    if self.padding != "CIRCULAR":
      return x, self.padding
    lhs, rhs, _ = self._specs
    widths = [(0, 0)] * x.ndim
    for c, w, st in zip([c for c in rhs if c not in "IO"], self.filter_shape, self.strides):
      a = lhs.index(c)
      widths[a] = spatial_ops.pads(x.shape[a], w, st, "SAME")
    return jnp.pad(x, widths, mode="wrap"), "VALID"

  def _apply(self, params, x, path, ctx, probes=None, record=None):
    W, b = params
    lhs, rhs, out = self._specs
    c_in = W.shape[rhs.index("I")]
    self._check_input(x, c_in, path)
    s = self.scales(self.fan_in(c_in), path, ctx)
    x, pad = self._padded(x)
    y = jax.lax.conv_general_dilated(x, W, self.strides, pad, dimension_numbers=(lhs, rhs, out))
    return self._output(y, s, b, path, probes)

  def _output(self, y, s, b, path, probes):
    """Multiplier, bias (one per channel, or per position when ``b`` has ``y``'s rank
    but the batch axis) and the empirical-NTK probe of the layer's output ``y``."""
    y = s.w_mult * y
    if b is not None:
      if b.ndim == 1:
        shape = [1] * y.ndim
        shape[self._specs[2].index("C")] = self.width
        b = b.reshape(shape)
      y = y + s.b_mult * b
    if probes is not None:
      y = y + probes[path]
    return y

  def _check_kernel_input(self, k, path):
    """ValueError unless ``k`` is one kernel with spatial axes."""
    name = type(self).__name__
    if isinstance(k, list):
      raise ValueError(f"{name} expects a single input kernel.")
    if not k.spatial:
      raise ValueError(f"{name} at {path} needs inputs with spatial axes (n, *spatial, "
                       "channels); its input has none (after Flatten or global pooling?).")
    lhs = self._specs[0]
    if lhs[0] == "N":  # (the input's channels where lhs says)
      layout.check_kernel(k, lhs.index("C") - len(lhs), name, path,
                          "dimension_numbers whose lhs has C on axis {}")

  def _kernel(self, k, path, ctx):
    self._check_kernel_input(k, path)
    lhs, _, out = self._specs
    letters, fs, st = self._check_spatial(k.spatial, path)
    fan_in = self.fan_in(k.width)
    s = self.scales(fan_in, path, ctx)
    full = not k.diagonal_spatial
    conv = lambda m, b: self._conv_kernel(m, b, full, fs, st)
    var_w = (s.w_mult * s.w_init) ** 2 * fan_in
    var_b = 0.0 if self.b_std is None else (s.b_mult * s.b_init) ** 2
    u = conv(k.nngp, 2)
    nngp = var_w * u + var_b
    ntk = None
    if k.ntk is not None:
      ntk = (s.w_lr * s.w_mult ** 2 * fan_in) * u + var_w * conv(k.ntk, 2)
      if self.b_std is not None:
        ntk = ntk + s.b_lr * s.b_mult ** 2
    cov1 = var_w * conv(k.cov1, 1) + var_b
    cov2 = cov1 if k.x1_is_x2 else var_w * conv(k.cov2, 1) + var_b
    spatial = tuple(self._out_size(n, w, t)
                    for n, w, t in zip(k.spatial, fs, st))
    mask1 = mask2 = None
    if k.mask1 is not None:  # masked where the window's center is
      axes = tuple(range(1, 1 + len(letters)))
      mask1 = self._window_mask(k.mask1, axes, fs, st)
      mask2 = mask1 if k.x1_is_x2 else self._window_mask(k.mask2, axes, fs, st)
    out_letters = [c for c in out if c not in "NC"]
    if out_letters != letters:  # the finite layer reorders spatial axes: so does the kernel
      perm = [letters.index(c) for c in out_letters]
      nngp, ntk, cov1, cov2 = (_permute_positions(m, b, perm, full) for m, b in
                               ((nngp, 2), (ntk, 2), (cov1, 1), (cov2, 1)))
      if mask1 is not None:
        mask1, mask2 = (_permute_positions(m, 1, perm, False) for m in (mask1, mask2))
      spatial = tuple(spatial[p] for p in perm)
    k = k.replace(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, width=self.width,
                  is_gaussian=True, source=path, spatial=spatial, mask1=mask1, mask2=mask2,
                  channel_axis=out.index("C") - len(out))
    return k if mask1 is None else k.remask()

  # Masked inputs (neural-tangents' Conv): a position is masked when all its channels
  # are, an output where its window's center is; masked covariances are zeroed.
  def _supports_mask(self):
    return type(self) is Conv  # ConvLocal and ConvTranspose say so themselves

  def _mask_out(self, mask, shape, path):
    lhs, _, out = self._specs
    mask = jnp.all(mask, axis=lhs.index("C"), keepdims=True)
    mask = jnp.broadcast_to(mask, tuple(1 if c == "C" else n for c, n in zip(lhs, shape)))
    letters = [c for c in lhs if c not in "NC"]
    fs, st = self._filter_for(letters)
    axes = [lhs.index(c) for c in letters]
    mask = self._window_mask(mask, axes, fs, st)
    return jnp.transpose(mask, [lhs.index(c) for c in out])

  def _window_mask(self, mask, axes, windows, strides):
    """The output mask from the input mask on its spatial ``axes``."""
    return center_mask(mask, axes, windows, strides, self.padding)

  def _lr(self, params, path, ctx, optimizer):
    W, b = params
    fan_in = W.size // self.width
    s = self.scales(fan_in, path, ctx, optimizer)
    return (s.w_lr, None if b is None else s.b_lr)


def center_mask(mask, axes, windows, strides, padding: str, sizes=None):
  """The output mask of a window layer: masked where the window's center input
  position is (neural-tangents' ``_pool_mask``: the mask strided through from
  ``(window - 1) // 2`` past the low padding; CIRCULAR pads as SAME).

  ``axes``: the spatial axes of ``mask``; ``sizes``: their input sizes (default: the
  mask's own)."""
  pad_type = "SAME" if padding == "CIRCULAR" else padding
  sl = [slice(None)] * mask.ndim
  for i, (a, w, s) in enumerate(zip(axes, windows, strides)):
    size = mask.shape[a] if sizes is None else sizes[i]
    lo, _ = spatial_ops.pads(size, w, s, pad_type)
    n_out = spatial_ops.out_size(size, w, s, pad_type)
    start = -lo + (w - 1) // 2
    sl[a] = slice(start, start + 1 + (n_out - 1) * s, s)
  return mask[tuple(sl)]


def _permute_positions(m, batch_ndim, perm, full):
  if m is None or m.ndim == 0:
    return m
  axes = list(range(batch_ndim))
  for p in perm:
    axes += [batch_ndim + 2 * p, batch_ndim + 2 * p + 1] if full else [batch_ndim + p]
  return jnp.transpose(m, axes)
