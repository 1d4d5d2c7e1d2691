"""A fully-connected network in one call."""
from __future__ import annotations

from typing import Optional, Sequence, Union

from kernels import parameterization as pz
from kernels.stax.combinators import Serial, serial
from kernels.stax.dense import Dense
from kernels.stax.elementwise import Elementwise


def mlp(widths: Sequence[int], activation: Elementwise, out_dim: int = 1, *,
        parameterization: Union[str, pz.Parameterization] = "ntk", W_std: float = 1.0,
        b_std: Optional[float] = None, readout_W_std: Optional[float] = None) -> Serial:
  """``Dense(w) -> activation`` for each hidden width, then a readout ``Dense(out_dim)``."""
  if not isinstance(activation, Elementwise):
    raise TypeError(f"activation must be a kernels.stax activation (e.g. stax.Relu()), "
                    f"got {type(activation).__name__}.")
  p = pz.get(parameterization)
  layers = []
  for w in widths:
    layers += [Dense(w, W_std, b_std, parameterization=p), activation]
  layers.append(Dense(out_dim, W_std if readout_W_std is None else readout_W_std, b_std,
                      parameterization=p))
  return serial(*layers)
