"""neural-tangents' enumerations of layer options, as string enumerations.

Each member is its own name as a string (``Padding.SAME == "SAME"``), so a layer takes
either, as neural-tangents' layers do.
"""
import enum


class Padding(enum.StrEnum):
  """Convolution and pooling padding (neural_tangents.stax.Padding)."""
  CIRCULAR = "CIRCULAR"
  SAME = "SAME"
  VALID = "VALID"


class PositionalEmbedding(enum.StrEnum):
  """Attention's positional embedding (neural_tangents.stax.PositionalEmbedding)."""
  NONE = "NONE"
  SUM = "SUM"
  CONCAT = "CONCAT"


class AttentionMechanism(enum.StrEnum):
  """Attention's normalisation of the logits (neural_tangents.stax.AttentionMechanism)."""
  SOFTMAX = "SOFTMAX"
  IDENTITY = "IDENTITY"
  ABS = "ABS"
  RELU = "RELU"


class AggregateImplementation(enum.StrEnum):
  """How `Aggregate` reads its pattern (neural_tangents.stax.AggregateImplementation)."""
  DENSE = "DENSE"
  SPARSE = "SPARSE"
