"""A decoder-only transformer in Flax, readable top to bottom.

Parameters are stored as they start (unit normals, gains at one, biases at zero,
each multiplied by its initial scale in `lm.scales`); the forward pass receives
the effective weights ``multiplier * stored``, so every width and depth rule of the
parameterization lives in one pytree (`lm.scales.Scales`) and none in this file,
except two scalars read from the same rules: the attention-logit multiplier
(1/sqrt(d) or 1/d) and the residual-branch multiplier (1 or depth**-alpha).
"""
from __future__ import annotations

from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm.config import ModelConfig

_unit = nn.initializers.normal(1.0)


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
    emb = self.param("embedding", _unit, (c.vocab_size, c.width))
    x = jnp.take(emb, tokens, axis=0)
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
