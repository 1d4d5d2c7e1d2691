"""A decoder-only transformer in Flax, readable top to bottom.

Parameters are stored as they start (unit normals, gains at one, biases at zero,
each multiplied by its initial scale in `lm.scales`); the forward pass receives
the effective weights ``multiplier * stored``, so every width and depth rule of the
parameterization lives in one pytree (`lm.scales.Scales`) and none in this file,
except two scalars read from the same rules: the attention-logit multiplier
(1/sqrt(d) or 1/d) and the residual-branch multiplier (1 or depth**-alpha).

Token ids must lie in [0, vocab_size). Concrete ids outside that range are a
ValueError naming ``tokens`` (`check_token_ids`); under ``jit`` the ids are traced
and cannot be checked, so an out-of-range id (negative ones included, which
indexing would otherwise wrap to the end of the table) embeds as NaN and every
logit that sees it is NaN: never numbers from another token.
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lm.config import ModelConfig

_unit = nn.initializers.normal(1.0)


def check_token_ids(tokens, vocab_size: int, name: str = "tokens") -> None:
  """Integer ids in [0, vocab_size): TypeError / ValueError naming ``name`` otherwise.

  The range is checked when the ids are concrete; traced ids (inside ``jit``) are
  left to `embed_ids` and `lm.train.loss_fn`, which turn out-of-range ids into NaN.
  """
  dtype = getattr(tokens, "dtype", None)
  if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
    raise TypeError(f"{name} must be an array of integer token ids, got dtype {dtype}.")
  if not isinstance(tokens, (np.ndarray, jax.Array)) or isinstance(tokens, jax.core.Tracer):
    return  # traced, or a shape-only stand-in (eval_shape)
  ids = np.asarray(tokens)
  bad = ids[(ids < 0) | (ids >= vocab_size)]
  if bad.size:
    raise ValueError(f"{name} must be token ids in [0, {vocab_size}) (the model's "
                     f"vocab_size), got {bad.size} outside it: {sorted(set(bad.tolist()))[:8]}.")


def valid_ids(tokens, vocab_size: int):
  """Boolean mask of the ids in [0, vocab_size) (traceable)."""
  return (tokens >= 0) & (tokens < vocab_size)


def embed_ids(table, tokens):
  """Rows of ``table`` for ``tokens``; an id outside [0, len(table)) gives a NaN row."""
  rows = jnp.take(table, tokens, axis=0, mode="clip")
  return jnp.where(valid_ids(tokens, table.shape[0])[..., None], rows, jnp.nan)


class Dense(nn.Module):
  """y = x W + b with W stored as given (no implicit scaling)."""
  features: int
  use_bias: bool = True

  @nn.compact
  def __call__(self, x):
    w = self.param("kernel", _unit, (x.shape[-1], self.features))
    y = x @ w
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class LayerNorm(nn.Module):
  """LayerNorm with a gain ('scale') and a bias (Ba et al. 2016, eq. 4)."""
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):
    n = x.shape[-1]
    mu = x.mean(-1, keepdims=True)
    var = jnp.square(x - mu).mean(-1, keepdims=True)
    y = (x - mu) * jax.lax.rsqrt(var + self.eps)
    return y * self.param("scale", nn.initializers.ones, (n,)) + \
        self.param("bias", nn.initializers.zeros, (n,))


def rotary(x, positions):
  """Rotary position embedding of (B, T, H, D) (Su et al. 2021, "RoFormer", eq. 34)."""
  d = x.shape[-1]
  inv = 1.0 / (10000.0 ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
  ang = positions[:, None].astype(jnp.float32) * inv[None, :]  # (T, D/2)
  cos, sin = jnp.cos(ang)[None, :, None, :], jnp.sin(ang)[None, :, None, :]
  x1, x2 = x[..., 0::2], x[..., 1::2]
  return jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).reshape(x.shape)


class Attention(nn.Module):
  """Causal multi-head self-attention with logits q.k * scale (scale = d^-1/2 or d^-1)."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x):
    c = self.cfg
    b, t, _ = x.shape
    hd = c.n_heads * c.dh
    q = Dense(hd, name="query")(x).reshape(b, t, c.n_heads, c.dh)
    k = Dense(hd, name="key")(x).reshape(b, t, c.n_heads, c.dh)
    v = Dense(hd, name="value")(x).reshape(b, t, c.n_heads, c.dh)
    if c.positions == "rotary":
      pos = jnp.arange(t)
      q, k = rotary(q, pos), rotary(k, pos)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * c.attention_scale
    mask = jnp.tril(jnp.ones((t, t), bool))
    logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    w = jax.nn.softmax(logits, axis=-1)
    y = jnp.einsum("bhqk,bkhd->bqhd", w, v).reshape(b, t, hd)
    return Dense(c.width, name="out")(y)


class MLP(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x):
    h = jax.nn.gelu(Dense(self.cfg.mlp_ratio * self.cfg.width, name="fc_in")(x))
    return Dense(self.cfg.width, name="fc_out")(h)


class Block(nn.Module):
  """Pre-LayerNorm block: x + m LN->attention, then x + m LN->MLP, m the branch multiplier."""
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x):
    m = self.cfg.branch_multiplier
    a = m * Attention(self.cfg, name="attn")(LayerNorm(name="ln_attn")(x))
    self.sow("intermediates", "attn_out", a)
    x = x + a
    f = m * MLP(self.cfg, name="mlp")(LayerNorm(name="ln_mlp")(x))
    self.sow("intermediates", "mlp_out", f)
    return x + f


class Transformer(nn.Module):
  """Tokens (B, T) -> logits (B, T, vocab)."""
  cfg: ModelConfig
  tied_multiplier: Optional[float] = None  # readout multiplier of the shared matrix

  @nn.compact
  def __call__(self, tokens):
    c = self.cfg
    if tokens.ndim != 2:
      raise ValueError(f"tokens must have shape (batch, time), got {tokens.shape}.")
    t = tokens.shape[1]
    if t > c.seq_len:
      raise ValueError(f"sequence length {t} exceeds seq_len={c.seq_len} of the model.")
    check_token_ids(tokens, c.vocab_size)
    emb = self.param("embedding", _unit, (c.vocab_size, c.width))
    x = embed_ids(emb, tokens)
    if c.positions == "learned":
      x = x + self.param("pos", _unit, (c.seq_len, c.width))[:t]
    self.sow("intermediates", "embedding", x)
    for i in range(c.depth):
      x = Block(c, name=f"block_{i}")(x)
    x = LayerNorm(name="ln_f")(x)
    if c.tied:
      logits = (x @ emb.T) * self.tied_multiplier
    else:
      logits = Dense(c.vocab_size, name="readout")(x)
    self.sow("intermediates", "logits", logits)
    return logits
