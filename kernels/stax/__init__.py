"""Layers with the names and signatures of ``neural_tangents.stax``.

``from kernels import stax`` replaces ``from neural_tangents import stax``::

  init_fn, apply_fn, kernel_fn = stax.serial(
      stax.Dense(512, W_std=1.5, b_std=0.05), stax.Relu(),
      stax.Dense(1, W_std=1.5, b_std=0.05))
  k = kernel_fn(x1, x2, ("nngp", "ntk"))

Every layer also takes a parameterization (``"ntk"``, ``"standard"``, ``"mup"`` or a
`kernels.parameterization.Parameterization`), read by every view of the network.
"""
from kernels.stax.activations import (Cos, Elementwise, Exp, ExpNormalized, Gabor, Gaussian,
                                      Hermite, Monomial, Polynomial, Rbf, RectifiedMonomial,
                                      Sigmoid_like, Sign, Sin)
from kernels.stax.attention import GlobalSelfAttention
from kernels.stax.branching import FanInConcat, FanInProd
from kernels.stax.combinators import (FanInSum, FanOut, Identity, Repeat, Residual, parallel,
                                      repeat, serial)
from kernels.stax.conv import Conv
from kernels.stax.conv_local import ConvLocal
from kernels.stax.conv_transpose import ConvTranspose
from kernels.stax.aggregate import Aggregate
from kernels.stax.dot_general import DotGeneral
from kernels.stax.dense import Dense
from kernels.stax.enums import (AggregateImplementation, AttentionMechanism, Padding,
                                PositionalEmbedding)
from kernels.stax.elementwise import (ABRelu, Abs, ElementwiseNumerical, Erf, Gelu, LeakyRelu,
                                      Relu, Tanh)
from kernels.stax.index import Index, Slice
from kernels.stax.layer import Layer
from kernels.stax.mlp import mlp
from kernels.stax.normalization import Dropout, LayerNorm
from kernels.stax.resize import ImageResize
from kernels.stax.pooling import AvgPool, Flatten, GlobalAvgPool, GlobalSumPool, SumPool

__all__ = [
    "Cos", "Exp", "ExpNormalized", "Gabor", "Gaussian", "Hermite", "Monomial", "Polynomial",
    "Rbf", "RectifiedMonomial", "Sigmoid_like", "Sign", "Sin", "GlobalSelfAttention",
    "ABRelu", "Abs", "Aggregate", "AggregateImplementation", "AttentionMechanism", "Padding",
    "PositionalEmbedding", "AvgPool", "Conv", "ConvLocal", "ConvTranspose",
    "Dense", "DotGeneral", "Dropout", "Elementwise",
    "ElementwiseNumerical", "Erf", "FanInConcat", "FanInProd", "FanInSum", "FanOut", "Flatten",
    "Gelu", "GlobalAvgPool", "GlobalSumPool", "Identity", "ImageResize", "Index", "Layer", "LayerNorm", "LeakyRelu",
    "Relu", "Repeat", "Residual", "Slice", "SumPool", "Tanh", "mlp", "parallel", "repeat", "serial",
]
