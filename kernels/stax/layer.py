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
from typing import Any, Callable, Hashable, Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp

from kernels import validation
from kernels.kernel import Kernel, input_kernel

Path = Tuple[int, ...]
DATA = "data"  # flow tag: reached from the inputs without crossing a Dense layer


@dataclasses.dataclass(frozen=True)
class Role:
  is_input: bool
  is_readout: bool


class Context:
  """Read-only facts about the whole network that a layer needs at its position."""

  def __init__(self, roles: dict):
    self.roles = roles

  def role(self, path: Path) -> Role:
    return self.roles[path]


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

  # ---- the three views ----------------------------------------------------
  def __iter__(self):
    yield self.init_fn
    yield self.apply_fn
    yield self.kernel_fn

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
    return _context(self)


@functools.lru_cache(maxsize=256)
def _context(layer: Layer) -> Context:
  roles: dict = {}
  out = layer._flow(frozenset([DATA]), (), roles)
  readouts = set()
  for tags in (out if isinstance(out, list) else [out]):
    readouts |= set(tags) - {DATA}
  final = {p: Role(is_input=inp, is_readout=p in readouts) for p, inp in roles.items()}
  return Context(final)


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

  def __call__(self, params, inputs, **kwargs):
    del kwargs  # accepted for neural-tangents compatibility (e.g. rng); unused.
    x = validation.as_float_array(inputs, "inputs")
    return self.layer._apply(params, x, (), self.layer.context())

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


@dataclasses.dataclass(frozen=True)
class KernelFn:
  """``kernel_fn(x1, x2=None, get=None)``: exact infinite-width kernels of a network.

  With ``get=None`` returns a `Kernel` with ``.nngp`` and ``.ntk``; with a string,
  that kernel as an array; with a tuple, a named tuple (neural-tangents semantics).
  The computation is jit-compiled (one executable per network, ``get`` and shapes).
  """
  layer: Layer

  def __call__(self, x1, x2=None, get=None, **kwargs):
    del kwargs
    get_t, single = canonicalize_get(get)
    x1, x2 = validation.check_inputs(x1, x2)
    need_ntk = get_t is None or "ntk" in get_t
    k = _kernel_jit(self.layer, x1, x2, need_ntk)
    if get_t is None:
      return k
    out = tuple(getattr(k, g) for g in get_t)
    return out[0] if single else _namedtuple(get_t)(*out)

  def propagate(self, k: Kernel) -> Kernel:
    """Applies the network to an input `Kernel` (traceable; no validation)."""
    return self.layer._kernel(k, (), self.layer.context())


def _finalize(k) -> Kernel:
  if isinstance(k, list):
    raise ValueError("The network ends with several branches (e.g. FanOut without FanInSum); "
                     "kernel_fn needs a single output.")
  ntk = k.ntk
  if ntk is not None:
    ntk = jnp.broadcast_to(ntk, k.nngp.shape)
  return k.replace(ntk=ntk, covs=None)


def diagonal_pass(layer: Layer, x1, x2):
  """Variances at every nonlinearity's input, and at the output (vectors only)."""
  k = layer._kernel(input_kernel(x1, x2, False, diagonal=True), (), layer.context())
  if isinstance(k, list):
    raise ValueError("The network ends with several branches (e.g. FanOut without FanInSum); "
                     "kernel_fn needs a single output.")
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


def matrix_pass(layer: Layer, x1, x2, need_ntk: bool, covs) -> Kernel:
  k = input_kernel(x1, x2, need_ntk, covs=covs)
  k = _finalize(layer._kernel(k, (), layer.context()))
  if k.ntk is not None and k.ntk.dtype == k.nngp.dtype:
    nngp, ntk = one_loop(k.nngp, k.ntk)
    k = k.replace(nngp=nngp, ntk=ntk)
  return k


_matrix_jit = jax.jit(matrix_pass, static_argnums=(0, 3))


def _kernel_jit(layer: Layer, x1, x2, need_ntk: bool) -> Kernel:
  """Variances first, op by op (O(n L) work, nothing to compile), then the compiled
  (n1, n2) pass, which reads them as inputs (see kernels.kernel)."""
  covs, cov1, cov2 = diagonal_pass(layer, x1, x2)
  k = _matrix_jit(layer, x1, x2, need_ntk, covs)
  return k.replace(cov1=cov1, cov2=cov2)
