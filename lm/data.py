"""Data, never downloaded: synthetic languages with exactly known entropy rate, and local bytes.

`MarkovLanguage`: an order-k Markov chain over `vocab_size` tokens whose
next-token distribution after each k-gram is Zipfian (p_r ~ r^-s over a random
ranking of the tokens, s drawn per k-gram). Its entropy rate
H = sum_c pi(c) H(P(.|c)), with pi the stationary law of k-grams (Cover & Thomas,
"Elements of Information Theory", Thm. 4.2.4), is the loss of the Bayes predictor
at every position with at least k tokens of context: the irreducible loss.

`ByteCorpus`: the bytes of a local file or of every file under a folder
(vocabulary 256), held-out tail for evaluation.

Both give batches as a pure function of a PRNG key, so a run resumed at step t
sees the same batches as one that never stopped.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np


def zipf_entropy(probs: np.ndarray) -> np.ndarray:
  """Shannon entropy in nats along the last axis."""
  p = np.asarray(probs, np.float64)
  return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)).sum(-1)


@dataclasses.dataclass(frozen=True)
class MarkovLanguage:
  """Order-`order` Markov chain with Zipfian next-token laws (exponents in [s_min, s_max])."""
  vocab_size: int = 32
  order: int = 2
  s_min: float = 0.6
  s_max: float = 1.6
  seed: int = 0

  def __post_init__(self):
    for k in ("vocab_size", "order"):
      v = getattr(self, k)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{k} must be a positive integer, got {v!r}.")
    if self.vocab_size < 2:
      raise ValueError(f"vocab_size must be >= 2, got {self.vocab_size}.")
    if self.vocab_size ** self.order > 2 ** 20:
      raise ValueError(f"vocab_size**order = {self.vocab_size ** self.order} contexts is too "
                       "many (at most 2**20).")
    if not 0 <= self.s_min <= self.s_max:
      raise ValueError(f"need 0 <= s_min <= s_max, got {self.s_min}, {self.s_max}.")

  @property
  def num_contexts(self) -> int:
    return self.vocab_size ** self.order

  @property
  def loss_skip(self) -> int:
    """Leading targets without a full k-token context (targets 1..k-1)."""
    return self.order - 1

  def transitions(self) -> np.ndarray:
    """(V^k, V) next-token probabilities (float64)."""
    rng = np.random.default_rng(self.seed)
    c, v = self.num_contexts, self.vocab_size
    s = rng.uniform(self.s_min, self.s_max, size=(c, 1))
    w = np.arange(1, v + 1, dtype=np.float64)[None, :] ** -s
    w /= w.sum(1, keepdims=True)
    perm = np.argsort(rng.random((c, v)), axis=1)
    p = np.empty_like(w)
    np.put_along_axis(p, perm, w, axis=1)
    return p

  def stationary(self, tol: float = 1e-14, max_iter: int = 100000) -> np.ndarray:
    """Stationary law of k-grams, (V^k,), by power iteration of the k-gram chain."""
    v, k = self.vocab_size, self.order
    p = self.transitions().reshape(v, v ** (k - 1), v)
    pi = np.full((v, v ** (k - 1)), 1.0 / self.num_contexts)
    for _ in range(max_iter):
      new = np.einsum("ar,ary->ry", pi, p).reshape(v, v ** (k - 1))
      if np.abs(new - pi).sum() < tol:
        return new.reshape(-1)
      pi = new
    raise RuntimeError("stationary law did not converge")

  def entropy_rate(self) -> float:
    """H = sum_c pi(c) H(P(.|c)) in nats per token (Cover & Thomas, Thm. 4.2.4)."""
    return float(self.stationary() @ zipf_entropy(self.transitions()))

  def sampler(self):
    """A jittable ``batch(key, batch_size, length) -> int32 (B, length)`` drawn from stationarity."""
    v, k = self.vocab_size, self.order
    logp = jnp.asarray(np.log(self.transitions()), jnp.float32)
    logpi = jnp.asarray(np.log(self.stationary()), jnp.float32)
    powers = jnp.asarray(v ** np.arange(k - 1, -1, -1), jnp.int32)

    def batch(key, batch_size: int, length: int):
      k0, k1 = jax.random.split(key)
      c0 = jax.random.categorical(k0, logpi, shape=(batch_size,))
      start = (c0[:, None] // powers[None, :]) % v  # (B, k) digits of the first k-gram

      def step(ctx, kk):
        y = jax.random.categorical(kk, logp[ctx])
        return (ctx * v) % (v ** k) + y, y

      keys = jax.random.split(k1, max(length - k, 0))
      _, ys = jax.lax.scan(step, c0, keys)
      return jnp.concatenate([start, ys.T], 1)[:, :length].astype(jnp.int32)
    return batch


@dataclasses.dataclass(frozen=True)
class ByteCorpus:
  """The bytes of a local file, or of every file under a folder (sorted), as tokens 0..255."""
  path: str
  eval_fraction: float = 0.1

  vocab_size = 256
  loss_skip = 0

  def tokens(self) -> np.ndarray:
    p = pathlib.Path(self.path)
    if not p.exists():
      raise ValueError(f"corpus path {self.path!r} does not exist.")
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    chunks = []
    for f in files:
      try:
        chunks.append(f.read_bytes())
      except OSError as e:
        raise ValueError(f"corpus file {str(f)!r} is unreadable: {e.strerror}.") from e
    data = b"".join(chunks)
    if not data:
      raise ValueError(f"corpus {self.path!r} is empty.")
    return np.frombuffer(data, np.uint8).astype(np.int32)

  def entropy_rate(self):
    return None

  def sampler(self, split: str = "train"):
    toks = self.tokens()
    n_eval = int(len(toks) * self.eval_fraction)
    part = toks[len(toks) - n_eval:] if split == "eval" else toks[:len(toks) - n_eval]
    arr = jnp.asarray(part)

    def batch(key, batch_size: int, length: int):
      if batch_size * length > len(part):
        raise ValueError(f"batch of {batch_size} x {length} tokens is larger than the "
                         f"{split} corpus ({len(part)} bytes of {self.path!r}); lower "
                         "batch_size or seq_len.")
      starts = jax.random.randint(key, (batch_size,), 0, len(part) - length + 1)
      return jax.vmap(lambda s: jax.lax.dynamic_slice(arr, (s,), (length,)))(starts)
    return batch


def make(kind: str, **kwargs):
  """'markov' -> MarkovLanguage(**kwargs); 'bytes' -> ByteCorpus(path=...)."""
  if kind == "markov":
    return MarkovLanguage(**kwargs)
  if kind == "bytes":
    if not kwargs.get("path"):
      raise ValueError("data.path must name a local file or folder for kind 'bytes'.")
    return ByteCorpus(**kwargs)
  raise ValueError(f"data.kind must be 'markov' or 'bytes', got {kind!r}.")
