"""The per-parameter multipliers, initial scales, learning rates and Adam epsilons as one pytree.

Each parameter's role (embedding, hidden matrix, readout, norm gain, bias, readout
bias) is read from its path in the Flax tree; its numbers come from
`kernels.parameterization.transformer_scales` of the model's `Parameterization`
(Yang et al. 2022, "Tensor Programs V", Table 3; depth: Yang et al. 2023,
"Tensor Programs VI"). `Scales` is a `flax.struct` dataclass of float32 leaves with
the tree structure of the parameters: it passes through `jit`, shards like the
parameters and is saved in checkpoints.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp

from kernels import parameterization as param_lib
from lm.config import ModelConfig
from lm.model import Transformer

OPTIMIZERS = ("sgd", "adam", "adamw")


@flax.struct.dataclass
class Scales:
  mult: Any  # forward multiplier: effective parameter = mult * stored
  init: Any  # standard deviation at initialisation (gains: value)
  lr: Any  # learning-rate factor
  eps: Any  # Adam epsilon factor


def _path_names(path):
  return tuple(getattr(k, "key", getattr(k, "name", str(k))) for k in path)


def role_of(names) -> str:
  """Role of a parameter from its path in the tree."""
  last = names[-1]
  if last in ("embedding", "pos"):
    return "embedding"
  if "readout" in names:
    return "readout" if last == "kernel" else "readout_bias"
  if last == "kernel":
    return "hidden"
  if last == "scale":
    return "norm"
  if last == "bias":
    return "bias"
  raise ValueError(f"no role for parameter {'/'.join(names)}")


def model(cfg: ModelConfig) -> Transformer:
  """The Flax module of `cfg` (with the tied-readout multiplier when tied)."""
  if not cfg.tied:
    return Transformer(cfg)
  p = cfg.rules
  r = param_lib.transformer_scales(p, "readout", width=cfg.vocab_size, fan_in=cfg.width,
                                   W_std=cfg.readout_std)
  e = param_lib.transformer_scales(p, "embedding", width=cfg.width, W_std=cfg.embed_std)
  return Transformer(cfg, tied_multiplier=(r.mult * r.init) / (e.mult * e.init))


def param_shapes(cfg: ModelConfig):
  tokens = jax.ShapeDtypeStruct((1, cfg.seq_len), jnp.int32)
  return jax.eval_shape(lambda t: model(cfg).init(jax.random.PRNGKey(0), t), tokens)["params"]


def make_scales(cfg: ModelConfig, optimizer: str = "adam") -> Scales:
  """The `Scales` pytree of `cfg` for `optimizer` ("sgd", "adam" or "adamw")."""
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
  if cfg.tied and cfg.zero_readout:
    raise ValueError("zero_readout cannot be used with tied embeddings.")
  p = cfg.rules
  opt = "sgd" if optimizer == "sgd" else "adam"

  def one(path, leaf):
    names = _path_names(path)
    role = role_of(names)
    fan_in = leaf.shape[0] if role in ("hidden", "readout") else 1
    width = cfg.width
    std = {"embedding": cfg.embed_std, "hidden": cfg.w_std,
           "readout": cfg.readout_std}.get(role, 1.0)
    if role == "readout_bias":
      fan_in = cfg.width
    s = param_lib.transformer_scales(p, role, width=width, fan_in=fan_in, W_std=std,
                                     optimizer=opt, in_branch=names[0].startswith("block_"))
    init = s.init
    if (cfg.zero_readout and role == "readout") or (
        cfg.zero_query and names[-2:] == ("query", "kernel")):
      init = 0.0
    return tuple(jnp.float32(v) for v in (s.mult, init, s.lr, s.eps))

  both = jax.tree_util.tree_map_with_path(one, param_shapes(cfg))
  pick = lambda i: jax.tree_util.tree_map(lambda t: t[i], both,
                                          is_leaf=lambda t: isinstance(t, tuple))
  return Scales(mult=pick(0), init=pick(1), lr=pick(2), eps=pick(3))


def init_params(key, cfg: ModelConfig, scales: Scales):
  """Stored parameters: unit normals (gains one, biases zero) times their initial scale."""
  tokens = jnp.zeros((1, cfg.seq_len), jnp.int32)
  raw = model(cfg).init(key, tokens)["params"]
  return jax.tree_util.tree_map(lambda r, s: r * s, raw, scales.init)


def effective(params, scales: Scales):
  """Weights as the forward pass uses them: multiplier * stored."""
  return jax.tree_util.tree_map(lambda p, m: p * m, params, scales.mult)


def apply(cfg: ModelConfig, params, scales: Scales, tokens, intermediates: bool = False):
  """Logits (B, T, vocab) of `tokens`; with `intermediates`, also the sown activations."""
  m = model(cfg)
  variables = {"params": effective(params, scales)}
  if intermediates:
    logits, state = m.apply(variables, tokens, mutable=["intermediates"])
    return logits, state["intermediates"]
  return m.apply(variables, tokens)
