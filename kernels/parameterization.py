"""Parameterizations as data: the abc form of Yang & Hu, read by every view of a network.

A `Parameterization` says, for each role a dense layer can play (input layer,
hidden layer, readout), how its weights are scaled with width:

* multiplier   ``W_std * fan_in**-a``      (applied in the forward pass),
* init scale   ``fan_in**-b``              (standard deviation of the stored weights),
* learning rate ``lr * width**-c``          (SGD; ``c_adam`` for Adam),

following "Feature Learning in Infinite-Width Neural Networks" (Yang & Hu 2021,
Sec. 3, eq. 1). For the input layer the fan-in is the fixed data dimension, so its
``a`` and ``b`` only place the constant ``1/sqrt(d)``; learning-rate exponents are
taken with respect to the layer's width (the fan-out of the input layer, the fan-in
of hidden and readout layers), as in the abc form. ``std_in`` says where ``W_std``
and ``b_std`` live ("multiplier" as in the NTK parameterization, "init" as in the
standard one), which changes the NTK but not the function at initialisation.

The finite network (`kernels.stax` ``init_fn``/``apply_fn`` and the Flax module),
the infinite-width kernels (``kernel_fn``), the optax optimizers (`kernels.optim`)
and the DMFT solvers all read the same object, so a network "trained under the
same parameterization" is so by construction.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import NamedTuple, Optional, Tuple

ROLES = ("input", "hidden", "readout")
OPTIMIZERS = ("sgd", "adam")


@dataclasses.dataclass(frozen=True)
class Exponents:
  """Width exponents of one layer role (Yang & Hu 2021, eq. 1)."""
  a: float  # multiplier W_std * fan_in**-a
  b: float  # initial standard deviation fan_in**-b
  c: float  # SGD learning rate lr * width**-c
  c_adam: float  # Adam learning rate lr * width**-c_adam


class DenseScales(NamedTuple):
  """Concrete numbers for one dense layer at given widths."""
  w_mult: float  # forward multiplier of the weight matrix
  w_init: float  # standard deviation of the stored weights
  w_lr: float  # learning-rate factor of the weights (relative to the base rate)
  b_mult: float  # forward multiplier of the bias
  b_init: float  # standard deviation of the stored bias
  b_lr: float  # learning-rate factor of the bias


@dataclasses.dataclass(frozen=True)
class Parameterization:
  """Width scaling of every layer role, plus richness and depth scaling.

  Attributes:
    name: preset name, for display.
    input, hidden, readout: `Exponents` of the weights in each role.
    bias_c, bias_c_adam: learning-rate exponents of non-readout biases
      (with respect to the layer's fan-out).
    readout_bias_c: learning-rate exponent of the readout bias.
    std_in: "multiplier" or "init": where W_std and b_std are applied.
    gamma0: richness; the readout is multiplied by 1/gamma0 and learning rates by
      gamma0**2 (SGD) or gamma0 (Adam) (Bordelon & Pehlevan 2022, eq. 2).
    branch_exponent: residual branches are multiplied by depth**-branch_exponent
      (Bordelon et al. 2023, "Depthwise Hyperparameter Transfer", eq. 1).
    depth: number of residual blocks the branch multiplier refers to; None (the
      default): the number of `kernels.stax.Residual` blocks in the network, counted
      by the network itself. A stated depth that disagrees with the network is an error.
    attention_exponent: attention logits are q.k * head_dim**-attention_exponent
      (1/sqrt(d) in SP, 1/d under muP: Yang et al. 2022, "Tensor Programs V", Sec. 4).
  """
  name: str
  input: Exponents
  hidden: Exponents
  readout: Exponents
  bias_c: float = 0.0
  bias_c_adam: float = 0.0
  readout_bias_c: float = 0.0
  std_in: str = "multiplier"
  gamma0: float = 1.0
  branch_exponent: float = 0.0
  depth: Optional[int] = None
  attention_exponent: float = 0.5

  def __post_init__(self):
    if self.std_in not in ("multiplier", "init"):
      raise ValueError(f"std_in must be 'multiplier' or 'init', got {self.std_in!r}.")
    if not (isinstance(self.gamma0, (int, float)) and self.gamma0 > 0
            and math.isfinite(self.gamma0)):
      raise ValueError(f"gamma0 must be a positive finite number, got {self.gamma0!r}.")
    if self.depth is not None and not (isinstance(self.depth, int) and self.depth >= 1):
      raise ValueError(f"depth must be a positive integer or None, got {self.depth!r}.")

  @property
  def branch_multiplier(self) -> float:
    """Multiplier of each residual branch, depth**-branch_exponent (needs a stated depth
    unless branch_exponent is 0; networks use `branch_multiplier_at`)."""
    if self.depth is None:
      if self.branch_exponent == 0:
        return 1.0
      raise ValueError(f"{self.name}: the branch multiplier needs the number of residual "
                       "blocks; a network counts them itself (branch_multiplier_at).")
    return float(self.depth) ** (-self.branch_exponent)

  def branch_multiplier_at(self, num_blocks: int, where: str = "Residual") -> float:
    """Multiplier of each of the ``num_blocks`` residual branches of a network:
    ``L**-branch_exponent`` with L = num_blocks (Bordelon et al. 2023, eq. 1); a stated
    ``depth`` that disagrees with L is a ValueError."""
    if self.depth is not None and self.depth != num_blocks:
      raise ValueError(f"{where}: the parameterization {self.name} states depth={self.depth} "
                       f"but the network has {num_blocks} residual blocks; state the depth "
                       "once (depth_mup() with no depth reads it from the network).")
    return float(max(num_blocks, 1)) ** (-self.branch_exponent)

  def exponents(self, role: str) -> Exponents:
    if role not in ROLES:
      raise ValueError(f"role must be one of {ROLES}, got {role!r}.")
    return getattr(self, role)

  def dense_scales(self, *, fan_in: int, fan_out: int, is_input: bool,
                   is_readout: bool, W_std: float, b_std: float | None,
                   optimizer: str = "sgd", s_in: int = 1) -> DenseScales:
    """Multipliers, initial scales and learning-rate factors of a dense layer.

    ``s_in``: the input width multiplier of neural-tangents' ``s = (s_in, s_out)``
    (standard parameterization; Sohl-Dickstein et al. 2020, Sec. 3): the scales of
    ``fan_in / s_in`` inputs with the multiplier divided by ``sqrt(s_in)``, so that the
    kernels count ``fan_in / s_in`` inputs (`width_multipliers`). ``fan_out`` is the
    layer's actual width, ``s_out`` times its nominal one.
    """
    if optimizer not in OPTIMIZERS:
      raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
    if s_in != 1:
      sc = self.dense_scales(fan_in=fan_in / s_in, fan_out=fan_out, is_input=is_input,
                             is_readout=is_readout, W_std=W_std, b_std=b_std,
                             optimizer=optimizer)
      return sc._replace(w_mult=sc.w_mult / s_in ** 0.5)
    role = "input" if is_input else ("readout" if is_readout else "hidden")
    e = self.exponents(role)
    width = fan_out if is_input else fan_in
    c = e.c if optimizer == "sgd" else e.c_adam
    lr_gamma = self.gamma0 ** (2 if optimizer == "sgd" else 1)
    out_mult = 1.0 / self.gamma0 if is_readout else 1.0
    w_std_mult, w_std_init = (W_std, 1.0) if self.std_in == "multiplier" else (1.0, W_std)
    w_mult = out_mult * w_std_mult * fan_in ** (-e.a)
    w_init = w_std_init * fan_in ** (-e.b)
    w_lr = lr_gamma * width ** (-c)
    bs = 0.0 if b_std is None else b_std
    b_mult, b_init = (out_mult * bs, 1.0) if self.std_in == "multiplier" else (out_mult, bs)
    if is_readout and not is_input:
      b_lr = lr_gamma * fan_in ** (-self.readout_bias_c)
    else:
      b_lr = lr_gamma * fan_out ** (-(self.bias_c if optimizer == "sgd" else self.bias_c_adam))
    return DenseScales(w_mult, w_init, w_lr, b_mult, b_init, b_lr)


def width_multipliers(s, parameterization: Parameterization, layer: str) -> Tuple[int, int]:
  """Checks neural-tangents' ``s = (s_in, s_out)`` of a Dense or convolution ``layer``:
  positive integers, other than (1, 1) only under the standard parameterization
  (neural-tangents ignores them under ``ntk``; a network built with them would not be
  the one described). Returns the pair as ints."""
  if (not isinstance(s, (tuple, list)) or len(s) != 2
      or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0 for v in s)):
    raise ValueError(f"{layer}: s must be a pair of positive integers, got {s!r}.")
  s_in, s_out = int(s[0]), int(s[1])
  if (s_in, s_out) != (1, 1) and parameterization.name != "standard":
    raise ValueError(f"{layer}: s = {tuple(s)!r} (width multipliers) applies only to the "
                     f"standard parameterization, not {parameterization.name!r}.")
  return (s_in, s_out)


def ntk() -> Parameterization:
  """NTK parameterization (Jacot et al. 2018, eq. 1): W_std/sqrt(fan_in) * W, W ~ N(0, 1)."""
  e = Exponents(a=0.5, b=0.0, c=0.0, c_adam=0.0)
  return Parameterization("ntk", input=e, hidden=e, readout=e)


def standard() -> Parameterization:
  """Standard parameterization (Sohl-Dickstein et al. 2020, eq. 3): W ~ N(0, W_std^2/fan_in)."""
  e = Exponents(a=0.0, b=0.5, c=0.0, c_adam=0.0)
  return Parameterization("standard", input=e, hidden=e, readout=e, std_in="init")


def mup(gamma0: float = 1.0) -> Parameterization:
  """muP in mean-field form with richness gamma0 (Bordelon & Pehlevan 2022, eq. 2; Yang & Hu 2021, Table 3).

  Forward pass: input W_std/sqrt(d) W x, hidden W_std/sqrt(N) W h, readout
  W_std/(gamma0 N) w.phi, all weights N(0, 1). SGD learning rate lr*gamma0^2*N on every
  weight (c = -1); Adam: lr*gamma0 on input weights and readout, lr*gamma0/sqrt(N)
  on hidden weights (the muP Adam rules, Yang et al. 2022, Table 3, in this form).
  """
  return Parameterization(
      "mup" if gamma0 == 1.0 else f"mup(gamma0={gamma0:g})",
      input=Exponents(a=0.5, b=0.0, c=-1.0, c_adam=0.0),
      hidden=Exponents(a=0.5, b=0.0, c=-1.0, c_adam=0.5),
      readout=Exponents(a=1.0, b=0.0, c=-1.0, c_adam=0.0),
      bias_c=-1.0, bias_c_adam=0.0, readout_bias_c=0.0, gamma0=float(gamma0),
      attention_exponent=1.0)


def mean_field(gamma0: float) -> Parameterization:
  """Mean-field parameterization with richness gamma0; identical to `mup(gamma0)`."""
  return mup(gamma0)


def depth_mup(depth: Optional[int] = None, gamma0: float = 1.0,
              branch_exponent: float = 0.5) -> Parameterization:
  """Depth-muP: muP plus residual branches scaled by depth**-branch_exponent (Bordelon et al. 2023, eq. 1).

  ``depth=None``: the number of residual blocks of the network the layers are in.
  """
  if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
    raise ValueError(f"depth must be a positive integer (the number of residual blocks) or "
                     f"None, got {depth!r}.")
  if not isinstance(branch_exponent, (int, float)) or not 0 <= branch_exponent <= 1:
    raise ValueError(f"branch_exponent must be a number in [0, 1] (1/2: depth-muP, 1: 1/L), "
                     f"got {branch_exponent!r}.")
  p = mup(gamma0)
  return dataclasses.replace(p, name=f"depth_mup(L={'net' if depth is None else depth}, "
                                    f"alpha={branch_exponent:g})",
                             depth=depth, branch_exponent=float(branch_exponent))


TRANSFORMER_ROLES = ("embedding", "hidden", "readout", "norm", "bias", "readout_bias")


class RoleScales(NamedTuple):
  """Concrete numbers for one transformer parameter (see `transformer_scales`)."""
  mult: float  # forward multiplier of the stored parameter
  init: float  # standard deviation of the stored parameter (gains: its constant value)
  lr: float  # learning-rate factor relative to the base rate
  eps: float  # Adam epsilon factor: the width scale of this parameter's gradient entries


def transformer_scales(p: Parameterization, role: str, *, width: int, fan_in: int = 1,
                       W_std: float = 1.0, optimizer: str = "adam",
                       in_branch: bool = False) -> RoleScales:
  """Multiplier, init scale, learning rate and Adam-epsilon factor of one transformer parameter.

  Yang et al. 2022 ("Tensor Programs V", Table 3) in the abc form of Yang & Hu 2021
  (eq. 1), read from the same `Exponents` as `dense_scales`: the embedding is an input
  layer of fan-in 1 (a one-hot row), hidden matrices and the readout use their roles,
  LayerNorm gains and biases the bias exponents. Gradient entries of a parameter scale
  as width**-e with e = a_readout + b_readout (+ a_hidden for hidden matrices; readout
  weights: a_readout; readout bias: 0), so Adam's epsilon is multiplied by width**-e and
  never swamps them. Inside residual branches of a network with branch exponent
  alpha > 0, learning rates get depth**(alpha - 1) (Adam) or depth**(2 alpha - 1)
  (SGD) and epsilon depth**-alpha (Yang et al. 2023, "Tensor Programs VI"; Dey et al.
  2025, "CompleteP", Table 1).
  """
  if role not in TRANSFORMER_ROLES:
    raise ValueError(f"role must be one of {TRANSFORMER_ROLES}, got {role!r}.")
  for name, v in (("width", width), ("fan_in", fan_in)):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"{name} must be a positive integer, got {v!r}.")
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
  r = p.readout
  e_stream = r.a + r.b  # backpropagated signal in the hidden stream ~ width**-e_stream
  if role == "embedding":
    d = p.dense_scales(fan_in=1, fan_out=width, is_input=True, is_readout=False,
                       W_std=W_std, b_std=None, optimizer=optimizer)
    s = RoleScales(d.w_mult, d.w_init, d.w_lr, width ** (-e_stream))
  elif role in ("hidden", "readout"):
    d = p.dense_scales(fan_in=fan_in, fan_out=width, is_input=False,
                       is_readout=role == "readout", W_std=W_std, b_std=None,
                       optimizer=optimizer)
    e = r.a if role == "readout" else e_stream + p.hidden.a
    s = RoleScales(d.w_mult, d.w_init, d.w_lr, fan_in ** (-e))
  else:  # norm gains and biases: multiplier 1, gains start at 1, biases at 0
    is_readout = role == "readout_bias"
    d = p.dense_scales(fan_in=fan_in if is_readout else width, fan_out=width,
                       is_input=False, is_readout=is_readout, W_std=1.0, b_std=None,
                       optimizer=optimizer)
    s = RoleScales(1.0, 1.0 if role == "norm" else 0.0, d.b_lr,
                   1.0 if is_readout else width ** (-e_stream))
  if in_branch and p.branch_exponent > 0:
    if p.depth is None:
      raise ValueError(f"{p.name}: residual-branch scales need the number of blocks; state "
                       "it as depth_mup(L) (the transformer's config does).")
    alpha, depth = p.branch_exponent, float(p.depth)
    lr_depth = depth ** (alpha - 1 if optimizer == "adam" else 2 * alpha - 1)
    s = s._replace(lr=s.lr * lr_depth, eps=s.eps * depth ** (-alpha))
  return s


def attention_scale(p: Parameterization, head_dim: int) -> float:
  """Multiplier of attention logits q.k: head_dim**-attention_exponent (Yang et al. 2022, Sec. 4)."""
  if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim < 1:
    raise ValueError(f"head_dim must be a positive integer, got {head_dim!r}.")
  return float(head_dim) ** (-p.attention_exponent)


PRESETS = {"ntk": ntk, "standard": standard, "mup": mup, "mean_field": mean_field,
           "depth_mup": depth_mup}


def get(parameterization: "str | Parameterization", **kwargs) -> Parameterization:
  """Returns a `Parameterization` from a preset name (with its arguments) or passes one through."""
  if isinstance(parameterization, Parameterization):
    if kwargs:
      raise ValueError("keyword arguments are only accepted with a preset name.")
    return parameterization
  if not isinstance(parameterization, str):
    raise TypeError("parameterization must be a preset name or a Parameterization, "
                    f"got {type(parameterization).__name__}.")
  name = parameterization.lower()
  if name not in PRESETS:
    raise ValueError(f"Unknown parameterization {parameterization!r}; "
                     f"expected one of {sorted(PRESETS)} or a Parameterization.")
  return PRESETS[name](**kwargs)
