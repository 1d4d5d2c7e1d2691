"""The network description: immutable layer objects and their three views.

A network is a tree of `Layer` objects (leaves such as `Dense` and `Relu`,
combinators such as `serial`). The tree is data: it is hashable, compared by
value, and analysed before use. From it come

* ``init_fn(key, input_shape) -> (output_shape, params)`` and
  ``apply_fn(params, x)``: the finite network, as pure functions;
* ``kernel_fn(x1, x2=None, get=None)``: its exact infinite-width kernels;

and, in other modules, the Flax module, the optax learning rates and the
empirical kernels. Like neural-tangents' stax, a layer unpacks as
``init_fn, apply_fn, kernel_fn = layer``.

Dense layers get their role (input, hidden, readout) from the structure of the
whole network: a dense layer is an *input* layer when some path from the data
reaches it without crossing another dense layer, and a *readout* when some path
from it reaches the output without crossing one. Roles pick the width exponents
of the parameterization (see `kernels.parameterization`).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import warnings
from typing import Any, Callable, Hashable, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from kernels import validation
from kernels.stax import symmetric_tiles
from kernels.kernel import (Kernel, MaskedArray, Requirements, entry_mask, gram_blocks,
                            input_kernel, spatial_input_kernel, zero_masked)

Path = Tuple[int, ...]
DATA = "data"  # flow tag: reached from the inputs without crossing a Dense layer


@dataclasses.dataclass(frozen=True)
class Role:
  is_input: bool
  is_readout: bool


class Context:
  """Read-only facts about the whole network that a layer needs at its position:
  the roles of its affine layers, the number of residual blocks (the depth L of the
  branch multipliers), and in ``apply_fn`` the key of stochastic layers."""

  def __init__(self, roles: dict, num_residual: int = 0, rng=None, pattern=None):
    self.roles = roles
    self.num_residual = num_residual
    self.rng = rng
    # The graph of `Aggregate` layers: an array in ``apply_fn``, the pair
    # ``(pattern1, pattern2)`` in ``kernel_fn`` (``pattern2`` None: ``pattern1`` for both).
    self.pattern = pattern

  def role(self, path: Path) -> Role:
    return self.roles[path]

  def with_rng(self, rng) -> "Context":
    return Context(self.roles, self.num_residual, rng, self.pattern)

  def with_pattern(self, pattern) -> "Context":
    return Context(self.roles, self.num_residual, self.rng, pattern)

  def rng_at(self, path: Path):
    """A key of its own for the stochastic layer at ``path`` (None without ``rng``)."""
    if self.rng is None:
      return None
    key = self.rng
    for i in path:
      key = jax.random.fold_in(key, i)
    return key


def _normal_sampler(key, path, name, shape, std, dtype):
  del path, name
  return std * jax.random.normal(key, shape, dtype)


class Layer:
  """Base class of every network node. Subclasses are frozen dataclasses."""

  # ---- to be implemented by subclasses ------------------------------------
  def _flow(self, tags, path: Path, roles: dict):
    """Propagates role tags (sets of the last Dense paths) through the layer."""
    return tags

  def _shape(self, shape, path: Path):
    return shape

  def _init(self, key, shape, path: Path, ctx: Context, sampler, dtype):
    return self._shape(shape, path), ()

  def _apply(self, params, x, path: Path, ctx: Context, probes=None, record=None):
    raise NotImplementedError

  def _kernel(self, k, path: Path, ctx: Context):
    raise NotImplementedError(f"{type(self).__name__} has no infinite-width kernel.")

  def _lr(self, params, path: Path, ctx: Context, optimizer: str):
    """Per-leaf learning-rate factors, a pytree with the structure of params."""
    return jax.tree_util.tree_map(lambda _: 1.0, params)

  def _children(self) -> Sequence["Layer"]:
    return ()

  # Whether the layer's kernel is a nonlinear map of the (n1, n2) covariance; the
  # compiled (n1, n2) pass holds a bounded number of them (see `_plan`).
  _nonlinear = False

  # What the layer needs of its input kernel (`kernels.kernel.Requirements`), read
  # once by `spatial_plan` to pick the cheapest representation for each layer.
  requirements = Requirements()
  # Whether the layer's output has no spatial axes whatever its input (Flatten,
  # global pooling): layers before it then need no more than it requires.
  _drops_spatial = False
  # Whether the layer runs in the fused two-pass fully-connected program (`kernel`);
  # networks with any other layer take the general program (`general_kernel`).
  _fast_path = False

  def _units(self, path: Path):
    """The layer as a chain of (layer, path) steps applied in order (serial flattens)."""
    return [(self, path)]

  # ---- masked inputs (neural-tangents' ``mask_constant``) -------------------
  def _supports_mask(self) -> bool:
    """Whether the layer carries masks through ``kernel_fn`` and ``apply_fn``; a network
    with any layer that does not refuses ``mask_constant`` (see `check_masking`)."""
    return False

  def _mask_out(self, mask, shape, path: Path):
    """The mask of the outputs of ``apply_fn`` from the mask of its inputs (an array
    broadcastable against inputs of ``shape``): unchanged unless the layer says
    otherwise (neural-tangents' ``mask_fn``)."""
    return mask

  def _apply_masked(self, params, x, mask, path: Path, ctx: Context):
    """``(outputs, their mask)``: the layer applied to ``x`` with its masked entries set
    to zero, as neural-tangents' ``supports_masking`` applies every layer."""
    y = self._apply(params, zero_masked(x, mask), path, ctx)
    return y, self._mask_out(mask, x.shape, path)

  # ---- the three views ----------------------------------------------------
  def __iter__(self):
    yield self.init_fn
    yield self.apply_fn
    yield self.kernel_fn

  def __len__(self):
    return 3

  def __getitem__(self, i):
    """``layer[2]`` is its kernel_fn, as for neural-tangents' (init_fn, apply_fn, kernel_fn)."""
    return (self.init_fn, self.apply_fn, self.kernel_fn)[i]

  @property
  def init_fn(self) -> Callable:
    return InitFn(self)

  @property
  def apply_fn(self) -> Callable:
    return ApplyFn(self)

  @property
  def kernel_fn(self) -> Callable:
    return KernelFn(self)

  # ---- analysis -----------------------------------------------------------
  def context(self) -> Context:
    if not is_static(self):  # hyperparameters under a JAX transformation
      return _context.__wrapped__(self)
    return _context(self)


def is_static(layer: Layer) -> bool:
  """True when every hyperparameter is a concrete number (the layer can key a cache).

  A layer built inside ``jax.grad`` or ``jax.jit`` from traced ``W_std``, ``b_std``
  or activation parameters is not hashable: its views then run traced, uncached.
  """
  try:
    hash(layer)
  except TypeError:
    return False
  return True


def count_residual(layer: Layer) -> int:
  """Number of residual blocks in the network: the depth L of the branch multipliers."""
  own = 1 if getattr(layer, "_is_residual", False) else 0
  return own + getattr(layer, "_repeats", 1) * sum(count_residual(c) for c in layer._children())


@functools.lru_cache(maxsize=256)
def _context(layer: Layer) -> Context:
  roles: dict = {}
  out = layer._flow(frozenset([DATA]), (), roles)
  readouts = set()
  for tags in (out if isinstance(out, list) else [out]):
    readouts |= set(tags) - {DATA}
  final = {p: Role(is_input=inp, is_readout=p in readouts) for p, inp in roles.items()}
  return Context(final, count_residual(layer))


@dataclasses.dataclass(frozen=True)
class InitFn:
  """``init_fn(key, input_shape) -> (output_shape, params)`` of a network."""
  layer: Layer

  def __call__(self, key, input_shape, dtype=None):
    shape = tuple(input_shape)
    if len(shape) < 1:
      raise ValueError(f"input_shape must have at least one axis, got {input_shape}.")
    if not isinstance(shape[-1], int) or shape[-1] <= 0:
      raise ValueError(f"input_shape must end with a positive feature dimension, got {input_shape}.")
    dtype = validation.default_float() if dtype is None else dtype
    return self.layer._init(key, shape, (), self.layer.context(), _normal_sampler, dtype)


@dataclasses.dataclass(frozen=True)
class ApplyFn:
  """``apply_fn(params, inputs) -> outputs`` of a network."""
  layer: Layer

  def __call__(self, params, inputs, *, rng=None, pattern=None, mask_constant=None, **kwargs):
    """``rng``: neural-tangents' key for stochastic layers (`Dropout` in train mode);
    ``pattern``: the graph of `Aggregate` layers (required by networks that have one).

    ``mask_constant``: entries of ``inputs`` equal to it (NaN: NaN entries) are masked,
    as in neural-tangents: each layer reads its inputs with masked entries set to zero,
    pooling and attention skip masked positions, and the result is a
    `kernels.kernel.MaskedArray` of the outputs and their mask (see `check_masking`).
    """
    if kwargs:
      raise TypeError(f"apply_fn got unexpected keyword arguments {sorted(kwargs)}; it takes "
                      "(params, inputs, rng=None, pattern=None, mask_constant=None).")
    x = validation.as_float_array(inputs, "inputs")
    ctx = self.layer.context()
    if rng is not None:
      ctx = ctx.with_rng(rng)
    if pattern is not None:
      ctx = ctx.with_pattern(pattern)
    if mask_constant is None:
      return self.layer._apply(params, x, (), ctx)
    check_masking(self.layer, mask_constant, "apply_fn")
    y, mask = self.layer._apply_masked(params, x, entry_mask(x, mask_constant), (), ctx)
    return MaskedArray(y, mask)

  def with_intermediates(self, params, inputs, probes=None):
    """Outputs with ``probes[path]`` added to each Dense output, and each Dense input.

    Used by the structured empirical NTK: the derivative of the outputs with respect
    to a probe is the cotangent at that layer's output.
    """
    record = {}
    x = validation.as_float_array(inputs, "inputs")
    y = self.layer._apply(params, x, (), self.layer.context(), probes=probes, record=record)
    return y, record


_GET_ALL = ("nngp", "ntk")


@functools.lru_cache(maxsize=None)
def _namedtuple(get: Tuple[str, ...]):
  return collections.namedtuple("Kernel", get)


def canonicalize_get(get) -> Tuple[Optional[Tuple[str, ...]], bool]:
  """Returns (tuple of requested kernels or None for the Kernel object, is_single)."""
  if get is None:
    return None, False
  if isinstance(get, str):
    get = (get,)
    single = True
  else:
    get = tuple(get)
    single = False
  for g in get:
    if g not in _GET_ALL:
      raise ValueError(f"get must name kernels among {_GET_ALL}, got {g!r}.")
  if not get:
    raise ValueError("get must name at least one kernel.")
  return get, single


def _unsupported_masking(layer: Layer):
  if not layer._supports_mask():
    return layer
  for c in layer._children():
    bad = _unsupported_masking(c)
    if bad is not None:
      return bad
  return None


def check_masking(layer: Layer, mask_constant, where: str) -> None:
  """ValueError unless ``mask_constant`` is a real number and every layer of the network
  carries masks: Dense, Conv, ConvLocal, ConvTranspose (not CIRCULAR), the elementwise
  nonlinearities, AvgPool, SumPool, GlobalAvgPool, GlobalSumPool, Flatten,
  GlobalSelfAttention, LayerNorm, Dropout and the combinators (serial, parallel, FanOut,
  FanInSum, FanInProd, FanInConcat, Identity, Residual, repeat)."""
  if isinstance(mask_constant, (bool, np.bool_)) or not isinstance(
      mask_constant, (int, float, np.integer, np.floating)):
    raise ValueError(f"{where}: mask_constant must be a real number (NaN and inf included) "
                     f"or None, got {mask_constant!r}.")
  bad = _unsupported_masking(layer)
  if bad is not None:
    raise ValueError(f"{where}: mask_constant is not supported by {type(bad).__name__}: it "
                     "cannot carry masked positions. Masking works through Dense, Conv, "
                     "ConvLocal, ConvTranspose (not CIRCULAR), the elementwise "
                     "nonlinearities, AvgPool, SumPool, GlobalAvgPool, GlobalSumPool, "
                     "Flatten, GlobalSelfAttention, LayerNorm, Dropout, FanInProd, "
                     "FanInConcat and the combinators; pass unpadded inputs, or "
                     "mask_constant=None.")


# neural-tangents' kernel_fn keywords and the values that mean what this project does.
# For (n, d) inputs: diagonal_batch (neural-tangents' default True) only decides whether
# cov1/cov2 are (n,) or (n, n), and these kernels always keep (n,) (nngp and ntk are the
# same either way); diagonal_spatial has no spatial axes to act on.
_NT_KERNEL_KEYWORDS = {"mask_constant": (None,), "diagonal_batch": (None, True, False),
                       "diagonal_spatial": (None, False, True), "batch_axis": (0,),
                       "channel_axis": (-1, 1)}


def check_kernel_keywords(kwargs: dict) -> None:
  """Unknown keywords get a TypeError; neural-tangents' ones a ValueError unless they mean the default."""
  for name, value in kwargs.items():
    if name not in _NT_KERNEL_KEYWORDS:
      raise TypeError(f"kernel_fn got an unexpected keyword argument {name!r}; it takes "
                      f"(x1, x2=None, get=None) and neural-tangents' {sorted(_NT_KERNEL_KEYWORDS)}.")
    if not any(value is v or (v is not None and value == v) for v in _NT_KERNEL_KEYWORDS[name]):
      raise ValueError(f"kernel_fn: {name}={value!r} is not supported: inputs are (n, d) "
                       "batches with no spatial axes or masks; allowed values are "
                       f"{_NT_KERNEL_KEYWORDS[name]}.")


def uses_pattern(layer: Layer) -> bool:
  """Whether a layer of the network reads the graph ``pattern`` (`Aggregate`)."""
  return getattr(layer, "_uses_pattern", False) or any(uses_pattern(c) for c in layer._children())


def check_pattern(layer: Layer, pattern, x2):
  """neural-tangents' kernel keyword ``pattern=(pattern1, pattern2)`` as a pair of arrays
  (``pattern2`` None: the same graphs as x1's, for x2=None); None for networks without
  `Aggregate`, which ignore it, as neural-tangents' do."""
  if not uses_pattern(layer):
    return None
  if pattern is None:
    raise ValueError("kernel_fn: the network has an Aggregate layer, so pattern=(pattern1, "
                     "pattern2) is required: the graphs of the points of x1 and x2 "
                     "((pattern1, None) or (pattern1, pattern1) when x2 is None).")
  if not isinstance(pattern, (tuple, list)) or len(pattern) != 2:
    raise ValueError("kernel_fn: pattern must be a pair (pattern1, pattern2) of graphs for "
                     f"the points of x1 and x2, got {type(pattern).__name__}.")
  p1, p2 = pattern
  if p1 is None and p2 is None:
    return (None, None)  # neural-tangents: no graph, Aggregate is the identity
  if p1 is None or (p2 is None and x2 is not None):
    raise ValueError("kernel_fn: pattern=(pattern1, pattern2) needs both graphs when x2 is "
                     "given (pattern2 may be None only when x2 is None).")
  return (p1, p2)  # arrays, or what the layer's to_dense reads


@dataclasses.dataclass(frozen=True)
class KernelFn:
  """``kernel_fn(x1, x2=None, get=None)``: exact infinite-width kernels of a network.

  With ``get=None`` returns a `Kernel` with ``.nngp`` and ``.ntk``; with a string,
  that kernel as an array; with a tuple, a named tuple (neural-tangents semantics).
  The computation is jit-compiled, in programs of a bounded number of layers, so
  that compile time grows linearly with depth. Entries that left the range of the
  dtype raise a `FloatingPointError` instead of being returned as inf or NaN.
  """
  layer: Layer

  def __call__(self, x1, x2=None, get=None, *, pattern=None, **kwargs):
    """``pattern``: neural-tangents' ``(pattern1, pattern2)``, the graphs of the points of
    x1 and x2 for `Aggregate` layers (``pattern2`` may be None when x2 is None)."""
    get_t, single = canonicalize_get(get)
    need_ntk = get_t is None or "ntk" in get_t
    if pattern is None and same_inputs(x1, x2):
      x2 = None  # K(x, x) is K(x, None): Dropout's 1/rate on the diagonal included
    x1a = validation.as_float_array(x1, "x1")
    pattern = check_pattern(self.layer, pattern, x2)
    if kwargs.get("mask_constant") is not None:
      k = self._masked(x1a, x2, need_ntk, pattern, kwargs)
    elif x1a.ndim <= 2:  # (n, d) inputs: the fused program when every layer has one
      check_kernel_keywords(kwargs)
      x1, x2 = validation.check_inputs(x1, x2)
      if is_fast(self.layer):
        k = kernel(self.layer, x1, x2, need_ntk)
      else:
        k = general_kernel(self.layer, x1, x2, need_ntk, False, pattern)
    else:
      kwargs.setdefault("channel_axis", input_channel_axis(self.layer))
      x1, x2, diagonal_spatial, axis = check_spatial_inputs(x1a, x2, kwargs)
      k = general_kernel(self.layer, x1, x2, need_ntk, diagonal_spatial, pattern,
                         channel_axis=axis)
    if get_t is None:
      return k
    out = tuple(getattr(k, g) for g in get_t)
    return out[0] if single else _namedtuple(get_t)(*out)

  def _masked(self, x1, x2, need_ntk, pattern, kwargs):
    """Kernels of inputs masked where they equal ``mask_constant`` (neural-tangents'
    semantics): masked entries are zeroed, a position whose every channel is masked is
    masked, and the masks travel through the network with the kernel (see
    `kernels.kernel.Kernel`); always the general program."""
    kwargs = dict(kwargs)
    c = kwargs.pop("mask_constant")
    check_masking(self.layer, c, "kernel_fn")
    if x1.ndim < 2:
      raise ValueError(f"x1 must have shape (n, *spatial, channels), got {x1.shape}.")
    kwargs.setdefault("channel_axis", input_channel_axis(self.layer) if x1.ndim > 2 else -1)
    axis = kwargs["channel_axis"]
    if not isinstance(axis, int) or not -x1.ndim < axis < x1.ndim or axis % x1.ndim == 0:
      raise ValueError(f"channel_axis must be a non-batch axis of x1 {x1.shape}, got {axis!r}.")

    def masked(x):
      m = entry_mask(x, c)
      return zero_masked(x, m), jnp.all(m, axis=axis)
    x1, m1 = masked(x1)
    m2 = None
    if x2 is not None:
      x2 = validation.as_float_array(x2, "x2")
      if x2.ndim == x1.ndim:
        x2, m2 = masked(x2)
    if x1.ndim <= 2:
      check_kernel_keywords({n: v for n, v in kwargs.items() if n != "channel_axis"})
      x1, x2 = validation.check_inputs(x1, x2)
      diagonal_spatial, axis = False, -1
    else:
      x1, x2, diagonal_spatial, axis = check_spatial_inputs(x1, x2, kwargs)
    m2 = m1 if m2 is None else m2
    return general_kernel(self.layer, x1, x2, need_ntk, diagonal_spatial, pattern, m1, m2,
                          channel_axis=axis)

  def propagate(self, k: Kernel) -> Kernel:
    """Applies the network to an input `Kernel` (traceable; no validation)."""
    return self.layer._kernel(k, (), self.layer.context())


def same_inputs(x1, x2, eps: float = 1e-12) -> bool:
  """Whether x2 is x1: the same object, or (values known outside jit) the same shape and
  values within ``eps`` (neural-tangents' ``x1_is_x2``). Under jit, traced copies of one
  array are not recognised: pass x2=None there."""
  if x2 is None or x2 is x1:
    return True
  if not (validation.is_concrete(x1) and validation.is_concrete(x2)):
    return False
  a, b = np.asarray(x1), np.asarray(x2)
  if a.shape != b.shape or a.dtype.kind not in "fiu" or b.dtype.kind not in "fiu":
    return False
  return bool(np.all(np.abs(a.astype(np.float64) - b.astype(np.float64)) < eps))


def _single(k) -> Kernel:
  if isinstance(k, list):
    raise ValueError("The network ends with several branches (e.g. FanOut without FanInSum); "
                     "kernel_fn needs a single output.")
  return k


def _finalize(k) -> Kernel:
  k = _single(k)
  ntk = k.ntk
  if ntk is not None:
    ntk = jnp.broadcast_to(ntk, k.nngp.shape)
  return k.replace(ntk=ntk, covs=None, keys1=None, keys2=None)


def diagonal_pass(layer: Layer, x1, x2):
  """Variances at every nonlinearity's input, and at the output (vectors only)."""
  k = _single(layer._kernel(input_kernel(x1, x2, False, diagonal=True), (), layer.context()))
  return k.covs, k.cov1, k.cov2


def one_loop(a: jax.Array, b: jax.Array):
  """Returns ``(a, b)`` unchanged, computed by one fused loop instead of two.

  XLA's CPU compiler fuses elementwise work per output: two outputs that share a
  long chain (the NNGP and NTK of a deep network) become two loops that each
  recompute the chain. A variadic reduction is one instruction with two outputs; a
  reduction over a zero-padded axis of length 2 adds exact zeros, so the values are
  unchanged and the chain is computed once (1.4x faster for a depth-5 ReLU MLP).
  """
  z = jnp.zeros_like(a)  # a and b share shape and dtype
  zero = jnp.zeros((), a.dtype)
  return jax.lax.reduce((jnp.stack([a, z]), jnp.stack([b, z])), (zero, zero),
                        lambda u, v: (u[0] + v[0], u[1] + v[1]), (0,))


def symmetrize(a: jax.Array) -> jax.Array:
  """``(a + a^T) / 2``, exactly symmetric, with the diagonal of ``a`` unchanged.

  The kernel of a batch with itself is symmetric in exact arithmetic; rounding (of the
  Gram product, or a quadrature that treats its two arguments differently) is not.
  """
  n = a.shape[0]
  sym = 0.5 * a + 0.5 * a.T
  return jnp.where(jnp.arange(n)[:, None] == jnp.arange(n)[None, :], a, sym)


def _fused(k: Kernel) -> Kernel:
  """The kernel with its NNGP and NTK computed by one loop (see `one_loop`)."""
  if k.ntk is None or k.ntk.shape != k.nngp.shape or k.ntk.dtype != k.nngp.dtype:
    return k
  nngp, ntk = one_loop(k.nngp, k.ntk)
  return k.replace(nngp=nngp, ntk=ntk)


def _symmetric_by_construction(layer: Layer) -> bool:
  """Whether every dual is bitwise symmetric in its arguments (see `Elementwise`)."""
  return getattr(layer, "symmetric_dual", True) and all(
      _symmetric_by_construction(c) for c in layer._children())


def _output(k, layer: Layer) -> Kernel:
  """The network's output kernel: NTK broadcast, one fused loop, exact symmetry for x2=None.

  The input Gram matrix is symmetric and every closed-form dual is, bit for bit, so
  x2=None kernels come out symmetric; a network with a quadrature is symmetrised.
  """
  k = _fused(_finalize(k))
  nngp, ntk = k.nngp, k.ntk
  if k.x1_is_x2 and not _symmetric_by_construction(layer):
    nngp = symmetrize(nngp)
    ntk = None if ntk is None else symmetrize(ntk)
  return k.replace(nngp=nngp, ntk=ntk)


def matrix_pass(layer: Layer, x1, x2, need_ntk: bool, covs) -> Kernel:
  """The (n1, n2) kernels of the whole network as one traceable computation."""
  k = input_kernel(x1, x2, need_ntk, covs=covs)
  return _output(layer._kernel(k, (), layer.context()), layer)


# Nonlinearities per compiled program. XLA fuses a program's (n1, n2) work into one
# loop whose compile time grows much faster than its length (depth 40: 4 s, 70: 40 s,
# 100: minutes); programs of a bounded length compile in time linear in depth.
NONLINEAR_PER_PROGRAM = 16


def _count_nonlinear(layer: Layer) -> int:
  return int(layer._nonlinear) + sum(_count_nonlinear(c) for c in layer._children())


@functools.lru_cache(maxsize=256)
def _plan(layer: Layer):
  """The network's steps and their split into programs of bounded length."""
  units = tuple(layer._units(()))
  bounds, start, count = [], 0, 0
  for i, (unit, _) in enumerate(units):
    count += _count_nonlinear(unit)
    if count >= NONLINEAR_PER_PROGRAM and i + 1 < len(units):
      bounds.append((start, i + 1))
      start, count = i + 1, 0
  bounds.append((start, len(units)))
  return units, tuple(bounds)


def _carry(k):
  """A kernel handed to the next program: without covs (an input there), both kernels
  from one fused loop (see `one_loop`)."""
  if isinstance(k, list):
    return [_carry(b) for b in k]
  return _fused(k).replace(covs=None)


def _with_covs(k, covs):
  if isinstance(k, list):
    return [_with_covs(b, covs) for b in k]
  return k.replace(covs=covs)


def _segment(layer: Layer, start: int, stop: int, need_ntk: bool, x1, x2, k, covs, grams):
  """Steps ``start:stop`` of the network; the first builds the input kernel (from
  ``grams`` if given), the last the output and whether all its entries are finite.

  The NTK is always computed: XLA:CPU compiles a network's NNGP alone into one loop per
  layer (each layer's square roots materialised), about 1.7x the time of both kernels
  in one loop (`one_loop`; depth-5 Erf and ReLU, n = 4000). ``need_ntk`` False: the
  NTK's finiteness is not checked, and the caller drops it.
  """
  units, _ = _plan(layer)
  ctx = layer.context()
  if start == 0:
    k = input_kernel(x1, x2, True, covs=covs, grams=grams)
  else:
    k = _with_covs(k, covs)
  for unit, path in units[start:stop]:
    k = unit._kernel(k, path, ctx)
  if stop < len(units):
    return _carry(k), None
  k = _output(k, layer)
  return k, _output_finite(k, need_ntk, k.x1_is_x2)


def _output_finite(k, need_ntk: bool, diagonal_decides: bool) -> jax.Array:
  """Whether the output kernels are finite (the NTK only if asked for); a kernel of a
  batch with itself is positive semi-definite, |K_ij| <= sqrt(K_ii K_jj): its diagonal
  decides."""
  ntk = k.ntk if need_ntk else None
  if diagonal_decides:
    return all_finite(jnp.diagonal(k.nngp), None if ntk is None else jnp.diagonal(ntk))
  return all_finite(k.nngp, ntk)


_segment_jit = jax.jit(_segment, static_argnums=(0, 1, 2, 3))


def _tile_segment(layer: Layer, start: int, stop: int, need_ntk: bool, size: int, xp, covs_p,
                  r0, c0, k):
  """`_segment` on one tile of a symmetric kernel (see `symmetric_tiles`): rows ``r0`` and
  columns ``c0`` of the padded inputs, cut inside the program (one compile for all tiles)."""
  xa, xb, covs = symmetric_tiles.tile_inputs(xp, covs_p, r0, c0, size)
  k, finite = _segment(layer, start, stop, need_ntk, xa, xb, k, covs, None)
  if finite is not None:  # the whole kernel is positive semi-definite: its diagonal decides
    finite = jnp.where(r0 == c0, _output_finite(k, need_ntk, True), True)
  return k, finite


_tile_segment_jit = jax.jit(_tile_segment, static_argnums=(0, 1, 2, 3, 4))
_gram_blocks_jit = jax.jit(gram_blocks)
_transposes_jit = jax.jit(lambda blocks: tuple(b.T for b in blocks))


def all_finite(*arrays) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in arrays if a is not None]))


def check_range(finite, dtype, where: str) -> None:
  """Raises FloatingPointError where kernel values left the range of ``dtype`` (not under tracing)."""
  try:
    if bool(np.asarray(finite)):
      return
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return
  hint = ("; compute in float64 (jax.config.update('jax_enable_x64', True) and float64 "
          "inputs)" if jnp.finfo(dtype).bits < 64 else "")
  raise FloatingPointError(
      f"{where}: kernel values overflow {jnp.dtype(dtype).name} (largest finite "
      f"{float(jnp.finfo(dtype).max):.3g}), so the result would be inf or NaN{hint}, or "
      "rescale the inputs or W_std.")


def kernel(layer: Layer, x1, x2, need_ntk: bool) -> Kernel:
  """Variances first, op by op (O(n L) work, nothing to compile), then the (n1, n2)
  pass, which reads them as inputs (see kernels.kernel), compiled in programs of at
  most `NONLINEAR_PER_PROGRAM` nonlinearities; for a large batch with itself, on the
  tiles on and above the diagonal only (`symmetric_tiles`)."""
  covs, cov1, cov2 = diagonal_pass(layer, x1, x2)
  if not is_static(layer):  # traced hyperparameters: one traced program, no cache
    k = matrix_pass(layer, x1, x2, need_ntk, covs)
  elif symmetric_tiles.applies(x1, x2) and _symmetric_by_construction(layer):
    # x2=None, n >= 2000, every dual symmetric in its arguments: the upper tiles only
    def run_tile(xp, covs_p, r0, c0, size):
      k = None
      for start, stop in _plan(layer)[1]:
        k, finite = _tile_segment_jit(layer, start, stop, need_ntk, size, xp, covs_p, r0, c0, k)
      return k, finite
    k, finite = symmetric_tiles.symmetric_kernel(run_tile, x1, covs, cov1)
    check_range(finite & all_finite(cov1, cov2), x1.dtype, "kernel_fn")
  else:
    grams = None
    if x2 is None and x1.shape[0] > 1:  # own programs: transposes are passes, not strided reads
      blocks = _gram_blocks_jit(x1)
      grams = (blocks, _transposes_jit(blocks))
    k = None
    for start, stop in _plan(layer)[1]:
      k, finite = _segment_jit(layer, start, stop, need_ntk, x1, x2, k, covs, grams)
      grams = None
    check_range(finite & all_finite(cov1, cov2), x1.dtype, "kernel_fn")
  if not need_ntk:  # computed with the NNGP (see `_segment`), not asked for
    k = k.replace(ntk=None)
  return k.replace(cov1=cov1, cov2=cov2)


# ----------------------------------------------------------------------------
# The general program: any layer, inputs with spatial axes.


def input_channel_axis(layer: Layer) -> int:
  """The channel axis of the inputs, as the first layer that reads it states
  (``Conv(dimension_numbers=("NCHW", ...))`` or a layer's ``channel_axis=1``: 1), as
  neural-tangents infers it."""
  def first(l):
    a = getattr(l, "_channel_axis_in", getattr(l, "channel_axis", None))
    if a is not None:
      return a
    for c in l._children():
      a = first(c)
      if a is not None:
        return a
    return None
  a = first(layer)
  return -1 if a is None else a


def is_fast(layer: Layer) -> bool:
  """Whether every layer of the network runs in the fused fully-connected program."""
  return layer._fast_path and all(is_fast(c) for c in layer._children())


def merged_requirements(layer: Layer) -> Requirements:
  """The requirements of a layer and everything inside it, combined."""
  reqs = [layer.requirements] + [merged_requirements(c) for c in layer._children()]
  spatial = [r.spatial for r in reqs if r.spatial is not None]
  return Requirements(full_spatial=any(r.full_spatial for r in reqs),
                      spatial=any(spatial) if spatial else None,
                      gaussian=reqs[0].gaussian)


@functools.lru_cache(maxsize=256)
def spatial_plan(layer: Layer, diagonal_out: bool):
  """The network's steps and, for each, whether it needs the full spatial covariance.

  Read once from the layers' `Requirements`, from the output back: a step needs the
  full covariance if it, or a later step before the spatial axes are dropped
  (`Flatten`, global pooling), mixes positions; the output of a network that keeps
  spatial axes is full unless ``diagonal_spatial`` is asked for. So a CNN ending in
  `Flatten` never builds the full covariance, and one ending in global pooling builds
  it only where it is needed (neural-tangents' ``Diagonal`` requirements, as data).
  """
  units = tuple(layer._units(()))
  need = not diagonal_out and not any(u._drops_spatial for u, _ in units)
  full = []
  for unit, _ in reversed(units):
    if unit._drops_spatial:
      need = False
    if merged_requirements(unit).full_spatial:
      need = True
    full.append(need)
  return units, tuple(reversed(full))


def _to_diagonal(k):
  if isinstance(k, list):
    return [_to_diagonal(b) for b in k]
  if not k.spatial or k.diagonal_spatial:
    return k
  from kernels.stax import spatial_ops  # pylint: disable=g-import-not-at-top
  n = len(k.spatial)
  return k.replace(nngp=spatial_ops.diagonal(k.nngp, 2, n),
                   ntk=None if k.ntk is None or k.ntk.ndim == 0 else spatial_ops.diagonal(k.ntk, 2, n),
                   cov1=spatial_ops.diagonal(k.cov1, 1, n), cov2=spatial_ops.diagonal(k.cov2, 1, n),
                   diagonal_spatial=True)


def general_pass(layer: Layer, need_ntk: bool, diagonal_spatial: bool, x1, x2, pattern=None,
                 mask1=None, mask2=None, channel_axis: int = -1):
  """The kernels of any network on inputs ``(n, *spatial, channels)`` as one program
  (``pattern``: the graphs of `Aggregate` layers, see `check_pattern`; ``mask1``,
  ``mask2`` ``(n, *spatial)``: the masked positions of masked inputs; ``channel_axis``:
  where the caller's inputs had their channels, counted from the end, before they were
  moved last)."""
  stop = len(spatial_plan(layer, diagonal_spatial)[0])
  return _general_segment(layer, need_ntk, diagonal_spatial, 0, stop, x1, x2, None, pattern,
                          mask1, mask2, channel_axis=channel_axis)


def _general_segment(layer: Layer, need_ntk: bool, diagonal_spatial: bool, start: int,
                     stop: int, x1, x2, k, pattern=None, mask1=None, mask2=None,
                     channel_axis: int = -1):
  """Steps ``start:stop`` of `general_pass`: the first builds the input kernel from
  ``x1``, ``x2`` and the masks, the others continue ``k``; the last returns the output
  and whether all its entries are finite (None before)."""
  from kernels.stax import spatial_ops  # pylint: disable=g-import-not-at-top
  units, full = spatial_plan(layer, diagonal_spatial)
  ctx = layer.context()
  if pattern is not None:
    ctx = ctx.with_pattern(pattern)
  if start == 0:
    k = spatial_input_kernel(x1, x2, need_ntk, diagonal_spatial=not full[0])
    k = k.replace(channel_axis=channel_axis)
    if mask1 is not None:
      k = k.replace(mask1=mask1, mask2=mask1 if x2 is None else mask2)
  for (unit, path), f in zip(units[start:stop], full[start:stop]):
    if not f:
      k = _to_diagonal(k)
    k = unit._kernel(k, path, ctx)
  if stop < len(units):
    return k, None
  k = _finalize(k)
  if k.x1_is_x2:  # exactly symmetric: one half of the kernel, mirrored (data movement only)
    n, f = len(k.spatial), not k.diagonal_spatial
    first = _first_half(k.nngp.shape, n, f)
    sym = lambda a: jnp.where(first, a, spatial_ops.swap_transpose(a, n, f))
    k = k.replace(nngp=sym(k.nngp), ntk=None if k.ntk is None else sym(k.ntk))
  return k, all_finite(k.nngp, k.ntk)


def _first_half(shape, n_spatial: int, full: bool):
  """Mask of the entries (a, b, i, i') with (a, i) <= (b, i') in one order of the
  (point, positions) pairs: with its exchange, it covers each pair once."""
  idx1 = np.arange(shape[0]).reshape((-1,) + (1,) * (len(shape) - 1))
  idx2 = np.arange(shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2))
  if full:
    for i in range(n_spatial):
      s = shape[2 + 2 * i]
      sh1 = [1] * len(shape)
      sh2 = [1] * len(shape)
      sh1[2 + 2 * i], sh2[3 + 2 * i] = s, s
      idx1 = idx1 * s + np.arange(s).reshape(sh1)
      idx2 = idx2 * s + np.arange(s).reshape(sh2)
  return jnp.asarray(idx1 <= idx2)


_general_segment_jit = jax.jit(_general_segment, static_argnums=(0, 1, 2, 3, 4),
                               static_argnames=("channel_axis",), donate_argnums=(7,))

# From this many entries of full spatial covariances on (NNGP and NTK together: 16 MB
# in float32), a step of the general program is compiled as its own program. In one
# program XLA:CPU keeps about twice the covariances alive and runs the convolutions of
# the covariance slower: Myrtle-5 on 8 inputs of 32 x 32 x 3 took 7.0-8.1 s and 4.7 GB
# of temporaries as one program, 3.5 s and half the memory step by step (float32, 2
# cores). Kernels without positions (or only their diagonal) stay in one program.
LARGE_KERNEL_ENTRIES = 2 ** 22


def _spatial_entries(k) -> int:
  """Entries of the full spatial covariances of ``k`` (a kernel, or a list of branches)."""
  if isinstance(k, list):
    return sum(_spatial_entries(b) for b in k)
  if not k.spatial or k.diagonal_spatial:
    return 0
  return 2 * int(np.prod(k.nngp.shape))


def _input_entries(layer: Layer, diagonal_spatial: bool, x1, x2) -> int:
  """`_spatial_entries` of the input kernel of `general_pass`."""
  if x1.ndim <= 2 or not spatial_plan(layer, diagonal_spatial)[1][0]:
    return 0
  n2 = x1.shape[0] if x2 is None else x2.shape[0]
  return 2 * x1.shape[0] * n2 * int(np.prod(x1.shape[1:-1])) ** 2


def general_kernel(layer: Layer, x1, x2, need_ntk: bool, diagonal_spatial: bool,
                   pattern=None, mask1=None, mask2=None, channel_axis: int = -1) -> Kernel:
  """Kernels of any network (see `general_pass`), jit-compiled per network: one program
  while the kernel is small, one per step where it has `LARGE_KERNEL_ENTRIES` or more."""
  if not is_static(layer):
    k, _ = general_pass(layer, need_ntk, diagonal_spatial, x1, x2, pattern, mask1, mask2,
                        channel_axis)
    return k
  n_steps = len(spatial_plan(layer, diagonal_spatial)[0])
  start, finite = 0, None
  large = _input_entries(layer, diagonal_spatial, x1, x2) >= LARGE_KERNEL_ENTRIES
  args = (x1, x2, None, pattern, mask1, mask2)  # the first step reads inputs and masks
  while finite is None:
    stop = start + 1 if large else n_steps
    with warnings.catch_warnings():  # a step that changes shapes cannot reuse its input
      warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
      k, finite = _general_segment_jit(layer, need_ntk, diagonal_spatial, start, stop, *args,
                                       channel_axis=channel_axis)
    start, large = stop, _spatial_entries(k) >= LARGE_KERNEL_ENTRIES
    args = (None, None, k, pattern, None, None)  # later steps carry them in ``k``
  check_range(finite, x1.dtype, "kernel_fn")
  return k


def check_spatial_inputs(x1, x2, kwargs):
  """Validates inputs ``(n, *spatial, channels)`` and neural-tangents' keywords; returns
  (x1, x2, diagonal_spatial, channel axis counted from the end) with channels last."""
  allowed = ("mask_constant", "diagonal_batch", "diagonal_spatial", "batch_axis",
             "channel_axis")
  for name in kwargs:
    if name not in allowed:
      raise TypeError(f"kernel_fn got an unexpected keyword argument {name!r}; it takes "
                      f"(x1, x2=None, get=None) and neural-tangents' {sorted(allowed)}.")
  if kwargs.get("diagonal_batch") not in (None, False, True):
    raise ValueError(f"diagonal_batch must be a bool, got {kwargs['diagonal_batch']!r}.")
  if kwargs.get("batch_axis", 0) != 0:
    raise ValueError(f"batch_axis must be 0, got {kwargs['batch_axis']!r}.")
  diagonal_spatial = kwargs.get("diagonal_spatial") or False
  if not isinstance(diagonal_spatial, bool):
    raise ValueError(f"diagonal_spatial must be a bool, got {diagonal_spatial!r}.")
  if x1.ndim < 2:
    raise ValueError(f"x1 must have shape (n, *spatial, channels), got {x1.shape}.")
  channel_axis = kwargs.get("channel_axis", -1)
  if not isinstance(channel_axis, int) or not -x1.ndim < channel_axis < x1.ndim or \
      channel_axis % x1.ndim == 0:
    raise ValueError(f"channel_axis must be a non-batch axis of x1 {x1.shape}, got "
                     f"{channel_axis!r}.")
  if any(s == 0 for s in x1.shape):
    raise ValueError(f"x1 must have at least one point, position and channel, got {x1.shape}.")
  validation.check_finite(x1, "x1")
  if x2 is not None:
    x2 = validation.as_float_array(x2, "x2")
    if x2.ndim != x1.ndim or x2.shape[1:] != x1.shape[1:]:
      raise ValueError(f"x2 must have shape (n2, ...) with the spatial and channel axes of "
                       f"x1, got x1 {x1.shape} and x2 {x2.shape} (channel_axis={channel_axis}).")
    if x2.shape[0] == 0:
      raise ValueError(f"x2 must have at least one point, got {x2.shape}.")
    validation.check_finite(x2, "x2")
    dtype = jnp.promote_types(x1.dtype, x2.dtype)
    x1, x2 = x1.astype(dtype), x2.astype(dtype)
  if channel_axis % x1.ndim != x1.ndim - 1:
    x1 = jnp.moveaxis(x1, channel_axis, -1)
    x2 = None if x2 is None else jnp.moveaxis(x2, channel_axis, -1)
  return x1, x2, diagonal_spatial, channel_axis % x1.ndim - x1.ndim
