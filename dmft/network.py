"""What the DMFT reads from a `kernels.stax` network: one walk of the description.

The DMFT solvers describe the feature-learning limit of fully-connected networks
under muP (mean-field form, richness gamma0; Bordelon & Pehlevan 2022, eq. 2) and of
residual networks with depth-muP branches (Bordelon et al. 2023, eq. 1). They accept
the networks ``kernels.stax`` writes as

  two-layer / deep:  serial(Dense(N, s_in), act, [Dense(N, s), act] * (L - 1), Dense(1, s_out))
  deep linear:       the same without activations (or with ``ABRelu(1, 1)``)
  residual:          serial(Dense(N, s_in), Residual(serial(act, Dense(N, s))) * B, act,
                            Dense(1, s_out))

with one parameterization for every layer (``"mup"``, ``mup(gamma0)`` or
``depth_mup(B, gamma0)``), no biases, one activation and one hidden ``W_std``. Any
other network gets a ValueError that says what is supported. `read` returns the
numbers the field equations need; `with_width` gives the same network at another
hidden width, so that finite ensembles and the theory come from one object.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from kernels import parameterization as pz
from kernels import stax
from kernels.stax import combinators
from kernels.stax import elementwise

SUPPORTED = (
    "serial(Dense(N), act, [Dense(N), act] * (L - 1), Dense(1)) (deep; no activation: "
    "deep linear) or serial(Dense(N), Residual(serial(act, Dense(N))) * B, act, Dense(1)) "
    "(residual), every layer under one mup or depth_mup parameterization, without biases")


@dataclasses.dataclass(frozen=True)
class Architecture:
  """The numbers the DMFT field equations take from a network.

  Attributes:
    kind: "two_layer" (one hidden layer), "deep" or "residual".
    depth: hidden layers L (residual: the embedding plus B blocks, L = B + 1).
    n_blocks: residual blocks B (0 unless residual).
    activation: the stax activation layer, or None for a linear network.
    input_std, W_std, readout_std: multipliers of the input, hidden and readout weights.
    gamma0: richness, from the parameterization.
    branch_multiplier: multiplier of each residual branch (1 unless residual), as
      the finite network applies it.
    width: the hidden width N of the finite network (the DMFT does not depend on it).
    parameterization: the network's `Parameterization`.
  """
  kind: str
  depth: int
  n_blocks: int
  activation: Optional[elementwise.Elementwise]
  input_std: float
  W_std: float
  readout_std: float
  gamma0: float
  branch_multiplier: float
  width: int
  parameterization: pz.Parameterization

  @property
  def linear(self) -> bool:
    return self.activation is None

  @property
  def residual(self) -> bool:
    return self.kind == "residual"


def _flatten(layer):
  """The units of a network in order, nested `serial`s opened (Residual kept whole)."""
  if isinstance(layer, combinators.Serial):
    return [u for l in layer.layers for u in _flatten(l)]
  return [layer]


def _is_linear(act) -> bool:
  return isinstance(act, elementwise.ABRelu) and act.a == 1.0 and act.b == 1.0


def _feature_learning(p: pz.Parameterization) -> bool:
  """True for muP in mean-field form (any gamma0, any branch exponent)."""
  m = pz.mup(p.gamma0)
  return (p.input, p.hidden, p.readout, p.std_in) == (m.input, m.hidden, m.readout, m.std_in)


def _unsupported(why: str):
  return ValueError(f"dmft: {why}. The DMFT solves {SUPPORTED}.")


def _check_dense(d, where: str):
  if d.b_std not in (None, 0.0):
    raise _unsupported(f"the {where} Dense layer has b_std={d.b_std!r}; the DMFT has no "
                       "biases (use b_std=None)")


def read(net) -> Architecture:
  """Walks a `kernels.stax` network once and returns its `Architecture`.

  Raises:
    ValueError: a network the DMFT cannot solve (the message says what it can), a
      parameterization without a feature-learning limit (ntk, standard), mixed
      parameterizations, activations or hidden ``W_std``.
    TypeError: ``net`` is not a `kernels.stax` layer.
  """
  if not isinstance(net, stax.Layer):
    raise TypeError(f"net must be a kernels.stax network, got {type(net).__name__}.")
  units = _flatten(net)
  for u in units:
    if not isinstance(u, (stax.Dense, elementwise.Elementwise, combinators.Residual)):
      raise _unsupported(f"the network contains {type(u).__name__}")
  if len(units) < 2 or not isinstance(units[0], stax.Dense) or not isinstance(
      units[-1], stax.Dense):
    raise _unsupported("the network must start with the input Dense layer and end with "
                       "the readout Dense layer")
  first, last, middle = units[0], units[-1], units[1:-1]
  if last.out_dim != 1:
    raise _unsupported(f"the readout has out_dim={last.out_dim}; the solvers take one output")
  _check_dense(first, "input")
  _check_dense(last, "readout")
  params = {first.parameterization, last.parameterization}
  blocks = [u for u in middle if isinstance(u, combinators.Residual)]
  hidden, acts = [], []
  if blocks:
    if not (middle[:len(blocks)] == blocks and len(middle) == len(blocks) + 1
            and isinstance(middle[-1], elementwise.Elementwise)):
      raise _unsupported("residual networks must read Dense, Residual blocks, activation, "
                         "Dense")
    acts.append(middle[-1])
    for b in blocks:
      inner = _flatten(b.block)
      if not (len(inner) == 2 and isinstance(inner[0], elementwise.Elementwise)
              and isinstance(inner[1], stax.Dense)):
        raise _unsupported("each Residual block must be serial(activation, Dense)")
      acts.append(inner[0])
      hidden.append(inner[1])
      params |= {b.parameterization, inner[1].parameterization}
  else:
    expect_dense = False  # after the input Dense: an activation or the next Dense
    n_hidden_layers = 1
    acts_per_layer = [0]
    for u in middle:
      if isinstance(u, stax.Dense):
        hidden.append(u)
        n_hidden_layers += 1
        acts_per_layer.append(0)
        expect_dense = False
      elif isinstance(u, elementwise.Elementwise):
        if expect_dense:
          raise _unsupported("two activations follow each other")
        acts.append(u)
        acts_per_layer[-1] += 1
        expect_dense = True
      else:
        raise _unsupported("Residual blocks and plain hidden layers are mixed")
    if any(n != acts_per_layer[0] for n in acts_per_layer):
      raise _unsupported("some hidden layers have an activation and others do not")
    for d in hidden:
      params.add(d.parameterization)
  for i, d in enumerate(hidden):
    _check_dense(d, f"hidden ({i + 1})")
  if len(params) != 1:
    raise _unsupported("its layers use different parameterizations "
                       f"({sorted(p.name for p in params)})")
  p = params.pop()
  if not _feature_learning(p):
    raise ValueError(
        f"dmft: parameterization {p.name!r} has no feature-learning limit (its infinite-"
        "width network is the lazy kernel machine: use kernels.predict with kernel_fn); "
        f"the DMFT solves mup(gamma0) and depth_mup networks.")
  if any(a != acts[0] for a in acts):
    raise _unsupported(f"its activations differ ({sorted({a.name for a in acts})})")
  act = acts[0] if acts else None
  if act is not None and _is_linear(act):
    act = None
  w_stds = {d.W_std for d in hidden}
  if len(w_stds) > 1:
    raise _unsupported(f"its hidden layers have different W_std ({sorted(w_stds)})")
  widths = {first.out_dim} | {d.out_dim for d in hidden}
  if len(widths) != 1:
    raise _unsupported(f"its hidden layers have different widths ({sorted(widths)})")
  depth = 1 + len(hidden)
  if blocks:
    # The multiplier the network applies: L**-alpha with L its number of blocks (a
    # depth stated in the parameterization that disagrees is a ValueError).
    kind, beta = "residual", float(blocks[0].parameterization.branch_multiplier_at(
        len(blocks), "dmft: Residual"))
  else:
    kind, beta = ("two_layer" if depth == 1 else "deep"), 1.0
  return Architecture(
      kind=kind, depth=depth, n_blocks=len(blocks), activation=act,
      input_std=float(first.W_std), W_std=float(w_stds.pop()) if w_stds else 1.0,
      readout_std=float(last.W_std), gamma0=float(p.gamma0), branch_multiplier=beta,
      width=int(first.out_dim), parameterization=p)


def with_width(net, width: int):
  """The same network with every hidden width set to ``width`` (the readout keeps its one output)."""
  from kernels import validation  # pylint: disable=g-import-not-at-top
  validation.check_positive_int(width, "width")
  read(net)  # only networks the DMFT reads
  last = _flatten(net)[-1]

  def sub(layer):
    if isinstance(layer, combinators.Serial):
      return dataclasses.replace(layer, layers=tuple(sub(l) for l in layer.layers))
    if isinstance(layer, combinators.Residual):
      return dataclasses.replace(layer, block=sub(layer.block))
    if isinstance(layer, stax.Dense) and layer is not last:
      return dataclasses.replace(layer, out_dim=int(width))
    return layer
  return sub(net)


def kernel_network(arch: Architecture):
  """The network whose ``kernel_fn`` gives the NTK of every network ``arch`` describes,
  written at width 1 and gamma0 = 1, with the architecture that goes with it.

  Under mup(gamma0) the readout's multiplier 1/gamma0 and the learning rates'
  gamma0**2 cancel in the NTK (Bordelon & Pehlevan 2022, eq. 2), and the
  infinite-width kernels do not depend on the hidden width, so networks that differ
  only in gamma0 and width have one t = 0 NTK. The solvers compile their initial-kernel
  programs for this network (a static argument): one compiled program serves a whole
  sweep over gamma0 or width, and the compilation cache finds it in the next process.
  (Its NNGP is the network's at gamma0 = 1; only the NTK is shared.)
  """
  p = arch.parameterization
  act = arch.activation if arch.activation is not None else elementwise.ABRelu(1.0, 1.0)
  net = build(1, depth=arch.depth, activation=act, gamma0=1.0, W_std=arch.W_std,
              input_std=arch.input_std, readout_std=arch.readout_std,
              residual=arch.residual, branch_exponent=p.branch_exponent if arch.residual
              else 0.5)
  return net, read(net)


def build(width: int, *, depth: int = 1, activation=None, gamma0: float = 1.0,
          W_std: float = 1.0, input_std: float = 1.0, readout_std: float = 1.0,
          residual: bool = False, branch_exponent: float = 0.5):
  """The mup (or depth_mup) network with these settings, as the solvers' conveniences take them.

  ``depth``: hidden layers L (residual: the embedding plus L - 1 blocks, with
  ``depth_mup(L - 1, gamma0, branch_exponent)``); ``activation``: a stax activation
  layer, a name or a callable (`dmft.activations.layer`); None: ReLU.
  """
  from dmft import activations  # pylint: disable=g-import-not-at-top
  from kernels import validation  # pylint: disable=g-import-not-at-top
  validation.check_positive_int(width, "width")
  validation.check_positive_int(depth, "depth")
  act = activations.layer("relu" if activation is None else activation)
  if residual:
    if depth < 2:
      raise ValueError(f"residual networks need depth >= 2 (embedding plus blocks), got {depth}.")
    p = pz.depth_mup(gamma0=gamma0, branch_exponent=branch_exponent)  # L: the blocks
    layers = [stax.Dense(width, input_std, parameterization=p)]
    layers += [stax.Residual(stax.serial(act, stax.Dense(width, W_std, parameterization=p)),
                             parameterization=p) for _ in range(depth - 1)]
    layers += [act, stax.Dense(1, readout_std, parameterization=p)]
  else:
    p = pz.mup(gamma0)
    layers = [stax.Dense(width, input_std, parameterization=p), act]
    for _ in range(depth - 1):
      layers += [stax.Dense(width, W_std, parameterization=p), act]
    layers.append(stax.Dense(1, readout_std, parameterization=p))
  return stax.serial(*layers)
