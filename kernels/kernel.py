"""The `Kernel` object that infinite-width layers transform.

For fully-connected networks a kernel between inputs ``x1`` (n1 points) and ``x2``
(n2 points) is described by

* ``nngp``  (n1, n2): covariance of the layer's outputs per channel (Neal 1996; Lee et al. 2018, eq. 4),
* ``ntk``   (n1, n2): learning-rate-weighted neural tangent kernel (Jacot et al. 2018, eq. 6),
* ``cov1``  (n1,) and ``cov2`` (n2,): the variances of the same outputs at x1 and x2,

and ``covs``, the variances at the input of every nonlinearity, keyed by its
position. Kernels are computed in two passes: a *diagonal* pass (``diagonal=True``,
vectors only, O(n L)) that fills ``covs``, then the (n1, n2) pass that reads them.
Separating the passes keeps the compiled program linear in depth (otherwise the
compiler re-derives every variance inside every fused matrix loop).

Static bookkeeping makes composition exact: the channel count ``width``
(needed by parameterizations whose NTK depends on widths), whether the outputs are
mean-zero Gaussian (``is_gaussian``: only then does a nonlinearity have a kernel),
and ``source``, the layer whose independent weights produced the outputs (two
branches with the same source are correlated and cannot be summed as independent).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Hashable, Optional

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Kernel:
  """Infinite-width kernels between two batches of inputs (a JAX pytree)."""
  nngp: jax.Array
  ntk: Optional[jax.Array]
  cov1: jax.Array
  cov2: jax.Array
  covs: Optional[dict] = None
  width: int = dataclasses.field(default=1, metadata=dict(static=True))
  is_gaussian: bool = dataclasses.field(default=False, metadata=dict(static=True))
  source: Hashable = dataclasses.field(default="input", metadata=dict(static=True))
  x1_is_x2: bool = dataclasses.field(default=False, metadata=dict(static=True))
  diagonal: bool = dataclasses.field(default=False, metadata=dict(static=True))

  def replace(self, **changes: Any) -> "Kernel":
    return dataclasses.replace(self, **changes)

  @property
  def shape(self):
    return self.nngp.shape


jax.tree_util.register_dataclass(
    Kernel,
    data_fields=["nngp", "ntk", "cov1", "cov2", "covs"],
    meta_fields=["width", "is_gaussian", "source", "x1_is_x2", "diagonal"])


def diagonal_mask(n: int) -> jax.Array:
  """(n, n) boolean mask of the diagonal, built from iotas so that it fuses into consumers."""
  return jnp.arange(n)[:, None] == jnp.arange(n)[None, :]


def input_kernel(x1: jax.Array, x2: Optional[jax.Array], compute_ntk: bool,
                 diagonal: bool = False, covs: Optional[dict] = None) -> Kernel:
  """Kernel of the raw inputs: per-feature second moments x1 x2^T / d (Lee et al. 2018, eq. 5)."""
  d = x1.shape[-1]
  cov1 = jnp.sum(x1 * x1, axis=-1) / d
  cov2 = cov1 if x2 is None else jnp.sum(x2 * x2, axis=-1) / d
  static = dict(width=d, is_gaussian=False, source="input", x1_is_x2=x2 is None)
  if diagonal:
    return Kernel(nngp=cov1, ntk=None, cov1=cov1, cov2=cov2, covs={}, diagonal=True, **static)
  # Times 1/d, not divided by d: a division per entry would end the fused loop of
  # the (n1, n2) pass that follows (see kernels.stax.layer.one_loop).
  if x2 is None:
    nngp = (x1 @ x1.T) * (1.0 / d)
    # Same rounding on the diagonal as cov1, so a point's correlation with itself is exactly 1.
    nngp = jnp.where(diagonal_mask(nngp.shape[0]), cov1[:, None], nngp)
  else:
    nngp = (x1 @ x2.T) * (1.0 / d)
  ntk = jnp.zeros((), nngp.dtype) if compute_ntk else None  # broadcasts; no (n1, n2) pass
  return Kernel(nngp=nngp, ntk=ntk, cov1=cov1, cov2=cov2, covs=covs, **static)
