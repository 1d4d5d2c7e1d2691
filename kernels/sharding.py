"""Kernels of many inputs over devices: the former entry point of `kernels.batching`.

``sharding.batch(kernel_fn, batch_size, devices)`` is `kernels.batch` with an
explicit device list; one implementation serves both (see `kernels.batching`).
"""
from __future__ import annotations

from typing import Optional, Sequence

from kernels.batching import batch as _batch


def batch(kernel_fn, batch_size: int = 0, devices: Optional[Sequence] = None, **kwargs):
  """`kernels.batch` over ``devices`` (default: all local devices); see `kernels.batching.batch`."""
  return _batch(kernel_fn, batch_size, devices=devices, **kwargs)
