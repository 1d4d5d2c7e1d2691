"""The shape and parameterization of a decoder-only transformer, checked on construction
with `kernels.validation` (ValueError naming the setting, TypeError for a wrong type)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from kernels import parameterization as param_lib
from kernels import validation

PARAMETERIZATIONS = ("sp", "mup", "depth_mup")
POSITIONS = ("learned", "rotary")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A decoder-only transformer: pre-LayerNorm blocks, causal attention, GELU MLP.

  Attributes:
    vocab_size: number of tokens.
    width: residual-stream width d_model.
    depth: number of blocks L.
    n_heads: attention heads; head_dim defaults to width // n_heads.
    head_dim: per-head dimension (None: width // n_heads, which must divide).
    mlp_ratio: MLP hidden width / width.
    seq_len: longest sequence (the learned positions' count).
    positions: "learned" or "rotary".
    tied: readout shares the embedding matrix.
    parameterization: "sp", "mup" or "depth_mup".
    branch_exponent: depth_mup branches are multiplied by depth**-branch_exponent
      (1/2 as in depth-muP, 1 for 1/L).
    gamma0: richness of mup/depth_mup (readout multiplied by 1/gamma0).
    embed_std, w_std, readout_std: constant factors of the three weight roles.
    zero_readout, zero_query: start the readout / query weights at zero.
  """
  vocab_size: int = 64
  width: int = 64
  depth: int = 2
  n_heads: int = 4
  head_dim: Optional[int] = None
  mlp_ratio: int = 4
  seq_len: int = 64
  positions: str = "learned"
  tied: bool = False
  parameterization: str = "mup"
  branch_exponent: float = 0.5
  gamma0: float = 1.0
  embed_std: float = 1.0
  w_std: float = 1.0
  readout_std: float = 1.0
  zero_readout: bool = False
  zero_query: bool = False

  def __post_init__(self):
    for k in ("vocab_size", "width", "depth", "n_heads", "mlp_ratio", "seq_len"):
      validation.check_positive_int(getattr(self, k), k)
    if self.head_dim is None and self.width % self.n_heads:
      raise ValueError(f"n_heads={self.n_heads} does not divide width={self.width}; "
                       "choose n_heads dividing width or set head_dim.")
    if self.head_dim is not None:
      validation.check_positive_int(self.head_dim, "head_dim")
    if self.positions not in POSITIONS:
      raise ValueError(f"positions must be one of {POSITIONS}, got {self.positions!r}.")
    if self.positions == "rotary" and self.dh % 2:
      raise ValueError(f"rotary positions need an even head_dim, got {self.dh}.")
    if self.parameterization not in PARAMETERIZATIONS:
      raise ValueError(f"unknown parameterization {self.parameterization!r}; expected one "
                       f"of {PARAMETERIZATIONS}.")
    validation.check_unit_interval(self.branch_exponent, "branch_exponent")
    for k in ("gamma0", "embed_std", "w_std", "readout_std"):
      validation.check_positive_number(getattr(self, k), k)

  @property
  def dh(self) -> int:
    return self.head_dim if self.head_dim is not None else self.width // self.n_heads

  @property
  def rules(self) -> param_lib.Parameterization:
    """The shared `kernels.parameterization` object this model reads."""
    if self.parameterization == "sp":
      return param_lib.standard()
    if self.parameterization == "mup":
      return param_lib.mup(self.gamma0)
    return param_lib.depth_mup(self.depth, self.gamma0, self.branch_exponent)

  @property
  def branch_multiplier(self) -> float:
    return self.rules.branch_multiplier

  @property
  def attention_scale(self) -> float:
    return param_lib.attention_scale(self.rules, self.dh)

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)

  def num_params(self, embeddings: bool = False) -> int:
    """Parameter count (non-embedding by default, as in Kaplan et al. 2020)."""
    n, hd, m = self.width, self.n_heads * self.dh, self.mlp_ratio * self.width
    block = 3 * n * hd + 3 * hd + hd * n + n + n * m + m + m * n + n + 4 * n
    total = self.depth * block + 2 * n
    if embeddings:
      total += self.vocab_size * n + (0 if self.tied else n * self.vocab_size + self.vocab_size)
      total += self.seq_len * n if self.positions == "learned" else 0
    return total

  def flops_per_token(self) -> float:
    """Training FLOPs per token: 6 N (matmuls, readout included) + 6 L T d attention (Kaplan et al. 2020, Table 1)."""
    n_mat = self.depth * (4 * self.width * self.n_heads * self.dh +
                          2 * self.width * self.mlp_ratio * self.width) + self.width * self.vocab_size
    return 6.0 * n_mat + 6.0 * self.depth * self.seq_len * self.n_heads * self.dh
