"""`dmft.solve`: the DMFT of the network a `kernels.stax` description writes.

One object, three exact views: ``net.kernel_fn`` (the lazy limit),
``dmft.train_ensemble(net, ...)`` (finite networks) and ``dmft.solve(net, ...)`` (the
feature-learning limit of the same network, Bordelon & Pehlevan 2022, eqs. 5-7;
residual networks: Bordelon et al. 2023, eq. 5).
"""
from __future__ import annotations

import inspect

from dmft import core
from dmft import deep
from dmft import network
from dmft import results
from dmft import two_layer
from kernels import validation as val

_FIELDS = {"two_layer": two_layer.solve_fields, "deep": deep.solve_fields,
           "residual": deep.solve_fields}


def _options(fn) -> tuple:
  return tuple(k for k, p in inspect.signature(fn).parameters.items()
               if p.kind == p.KEYWORD_ONLY and k not in ("lr", "steps"))


def solve(net, X, y, *, lr: float = 1.0, steps: int = 100, X_test=None, y_test=None,
          **options) -> results.DMFTResult:
  """Solves the DMFT of ``net`` trained by full-batch gradient descent on (X, y).

  Bordelon and Pehlevan (2022), Eqs. (5)-(7) in discrete time; residual networks with
  depth-muP branches as in Bordelon et al. (2023), Eq. (5).

  Args:
    net: a `kernels.stax` network the DMFT reads (`dmft.network.SUPPORTED`): its
      activation (any stax activation, ``ElementwiseNumerical`` included, with the
      layer's own Gaussian kernels), depth, residual blocks and their multiplier, input,
      hidden and readout ``W_std``, and the richness ``gamma0`` of its mup or depth_mup
      parameterization. Its widths do not enter: the DMFT is the infinite-width limit.
    X, y: (P, D) training inputs and (P,) targets.
    lr: base learning rate (the finite network's SGD rate on every layer is
      ``lr * gamma0**2 * N``, as `kernels.optim.sgd` applies it).
    steps: gradient-descent steps T.
    X_test, y_test: optional test inputs and targets.
    **options: solver settings. One hidden layer (Monte Carlo neurons with an exact
      control variate): ``seed``, ``n_samples`` (4096), ``damping`` (1), ``tol``,
      ``max_iterations``, ``kernel_times``, ``raise_on_nonconvergence``, ``method``
      ('march' or 'iterate'). Deep and residual networks (sampled single-site
      process; exact for linear networks): ``seed``, ``n_samples`` (2048),
      ``n_response`` (256), ``damping`` (0.7), ``tol``, ``max_iterations`` (200),
      ``kernel_times``, ``raise_on_nonconvergence``.

  Returns:
    A `DMFTResult`; ``info["architecture"]`` records what was read from ``net``.

  Raises:
    ValueError: a network outside the DMFT (the message says what is supported), bad
      data or settings (the message names the argument), an option the solver of this
      network does not take.
    DivergenceError: the dynamics blow up. NonConvergenceError: the tolerance was not met.
  """
  arch = network.read(net)
  # Linear networks of any depth: the exact (sample-free) equations of `dmft.deep`.
  fields = deep.solve_fields if arch.linear else _FIELDS[arch.kind]
  allowed = _options(fields)
  unknown = sorted(set(options) - set(allowed))
  if unknown:
    raise ValueError(f"dmft.solve: option(s) {unknown} are not taken by the {arch.kind} "
                     f"solver; it takes {sorted(allowed)}.")
  lr = val.check_positive_number(lr, "lr")
  steps = val.check_int(steps, "steps", minimum=1)
  prob = core.prepare(X, y, X_test, y_test)
  res = fields(arch, prob, net, lr=lr, steps=steps, **options)
  res.info["architecture"] = dict(
      kind=arch.kind, depth=arch.depth, n_blocks=arch.n_blocks,
      activation="linear" if arch.linear else arch.activation.name,
      parameterization=arch.parameterization.name, gamma0=arch.gamma0,
      branch_multiplier=arch.branch_multiplier, input_std=arch.input_std,
      W_std=arch.W_std, readout_std=arch.readout_std)
  return res
