"""A layer's own axes: neural-tangents' ``batch_axis`` and ``channel_axis`` arguments.

Layers take the axes of their activations as neural-tangents' do: the batch axis is 0
and the channel axis any other one (``channel_axis=1`` for NCHW activations after a
``Conv`` writing them). A `kernels.kernel.Kernel`'s positions are the activations'
non-batch, non-channel axes in their order (the order ``Conv`` keeps for any
``dimension_numbers``), and ``Kernel.channel_axis`` records where the channels sit
among them. Each layer reads its axis arguments in the activations' layout, checks
its channel axis against the kernel's (`check_kernel`), and these helpers translate
them to the channels-last layout that the kernels and the finite layers compute in.
A layer with a ``channel_axis`` field also states the raw inputs' channel axis when
it is the first layer to read one (`kernels.stax.layer.input_channel_axis`).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import jax.numpy as jnp


def check_axes(batch_axis, channel_axis, name: str) -> None:
  """ValueError unless the batch axis is 0 and the channel axis an int other than 0."""
  if isinstance(batch_axis, bool) or batch_axis != 0:
    raise ValueError(f"{name}: batch_axis must be 0, got {batch_axis!r}.")
  if isinstance(channel_axis, bool) or not isinstance(channel_axis, int) or channel_axis == 0:
    raise ValueError(f"{name}: channel_axis must be a non-batch axis (an int other than 0), "
                     f"got {channel_axis!r}.")


def channel_index(shape: Sequence[int], channel_axis: int, name: str, where) -> int:
  """The channel axis of activations of ``shape`` as a non-negative index (ValueError if
  it is the batch axis or out of range)."""
  n = len(shape)
  c = channel_axis % n if -n <= channel_axis < n else None
  if c is None or c == 0:
    raise ValueError(f"{name} at {where}: channel_axis={channel_axis} is not a non-batch axis "
                     f"of its input of shape {tuple(shape)}.")
  return c


def channels_last_order(ndim: int, c: int) -> Tuple[int, ...]:
  """The activations' axes in channels-last order: batch, positions in order, channel."""
  return (0,) + tuple(a for a in range(1, ndim) if a != c) + (c,)


def to_channels_last_axis(a: int, ndim: int, c: int) -> int:
  """Where axis ``a`` (non-negative) of the activations lies once channels are last."""
  return channels_last_order(ndim, c).index(a)


def to_channels_last(x, c: int):
  """``x`` with its channel axis ``c`` moved last (positions keep their order)."""
  return x if c == x.ndim - 1 else jnp.moveaxis(x, c, -1)


def from_channels_last(y, c: int):
  """The inverse of `to_channels_last` (the channel axis back at ``c``)."""
  return y if c == y.ndim - 1 else jnp.moveaxis(y, -1, c)


def shape_to_channels_last(shape: Sequence[int], c: int) -> Tuple[int, ...]:
  return tuple(shape[a] for a in channels_last_order(len(shape), c))


def shape_from_channels_last(shape: Sequence[int], c: int) -> Tuple[int, ...]:
  shape = tuple(shape)
  return shape[:c] + (shape[-1],) + shape[c:-1]


def check_kernel(k, channel_axis: int, name: str, where, fix: str = "channel_axis={}") -> int:
  """The channel axis of ``k``'s activations (non-negative), after a ValueError unless it
  is the layer's ``channel_axis``: the finite layer would then act on another axis than
  the kernel's channels (neural-tangents refuses such networks as ill-defined too)."""
  ndim = len(k.spatial) + 2
  c = channel_index((1,) * ndim, channel_axis, name, where)
  have = k.channel_axis % ndim
  if c != have:
    raise ValueError(f"{name} at {where} reads channel_axis={channel_axis} (axis {c} of its "
                     f"{ndim}-axis inputs) but its inputs have their channels on axis {have}: "
                     "the finite layer would act on another axis than the channels; pass "
                     f"{fix.format(have)} (or write the activations channels last).")
  return c


def check_branches(ks, name: str, where) -> None:
  """ValueError unless every branch has its channels on the same axis (the finite layer
  would otherwise combine channels of one branch with positions of another)."""
  axes = [k.channel_axis for k in ks]
  if len(set(axes)) > 1:
    raise ValueError(f"{name} at {where}: its branches have their channels on different "
                     f"axes ({axes}, counted from the end).")
