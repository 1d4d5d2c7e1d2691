"""``kernels.stax`` takes neural-tangents 0.6.5's names, parameters and defaults.

tests/fixtures/nt_signatures.json holds the signature of every public callable of
``neural_tangents.stax``, read from neural-tangents itself in the reference environment
(``benchmarks/nt_signatures.py``). A parameter missing here would be a TypeError for code
written for neural-tangents; a default that differs would build another network.
"""
import enum
import inspect
import json
import pathlib

import numpy as np

from kernels import stax

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "nt_signatures.json"
DATA = json.loads(FIXTURE.read_text())

# neural-tangents' decorators for writing layers (``@layer``, ``@requires``,
# ``@supports_masking``, ``unmask_fn``): layers here state their requirements as data
# (`kernels.kernel.Requirements`) and masking as methods, so these have no counterpart.
# Nor do ``Bool``, ``Diagonal`` and ``MaskedArray``, the types those decorators and
# neural-tangents' kernels use inside.
NOT_LAYERS = {"layer", "requires", "supports_masking", "unmask_fn", "Bool", "Diagonal",
              "MaskedArray"}
# Parameters that are required in neural-tangents and have a default here.
DEFAULTED_HERE = {("ElementwiseNumerical", "deg")}


def _as_json(v):
  """A default as the fixture writes it (tuples as lists, enum members by name)."""
  if isinstance(v, (tuple, list)):
    return [_as_json(e) for e in v]
  if callable(v):
    return "<callable>"
  if hasattr(v, "name") and not isinstance(v, (str, int, float)):
    return v.name
  return v


def _ours(name):
  f = getattr(stax, name)
  if isinstance(f, type) and issubclass(f, enum.Enum):
    return None
  return [(p.name, "<required>" if p.default is inspect.Parameter.empty else _as_json(p.default))
          for p in inspect.signature(f).parameters.values()]


def test_fixture_is_neural_tangents_0_6_5():
  assert DATA["versions"]["neural_tangents"] == "0.6.5"
  assert {"Dense", "Conv", "GlobalSelfAttention", "Elementwise", "Relu"} <= set(DATA["signatures"])


def test_every_layer_has_neural_tangents_parameters_in_order_with_its_defaults():
  problems = []
  for name, params in DATA["signatures"].items():
    if name in NOT_LAYERS:
      continue
    if not hasattr(stax, name):
      problems.append(f"{name}: missing")
      continue
    ours = _ours(name)
    if ours is None:  # an enumeration: its members, test_enumerations_are_strings_layers_accept
      continue
    ours_names = [p for p, _ in ours]
    theirs_names = [p for p, _ in params]
    # Ours may add keywords (a parameterization, for instance) after theirs.
    if ours_names[:len(theirs_names)] != theirs_names:
      problems.append(f"{name}: parameters {ours_names}, neural-tangents {theirs_names}")
      continue
    for (p, theirs), (_, mine) in zip(params, ours):
      if theirs == mine or (name, p) in DEFAULTED_HERE:
        continue
      if isinstance(theirs, str) and isinstance(mine, str) and theirs.upper() == mine.upper():
        continue  # enum names (Padding.VALID) against their strings
      problems.append(f"{name}({p}): default {mine!r}, neural-tangents {theirs!r}")
  assert not problems, "\n".join(problems)


def test_enumerations_are_strings_layers_accept():
  """``stax.Padding.SAME`` and ``"SAME"`` build the same layer, as in neural-tangents."""
  assert [m.name for m in stax.Padding] == ["CIRCULAR", "SAME", "VALID"]
  assert [m.name for m in stax.AttentionMechanism] == ["SOFTMAX", "IDENTITY", "ABS", "RELU"]
  assert [m.name for m in stax.PositionalEmbedding] == ["NONE", "SUM", "CONCAT"]
  assert [m.name for m in stax.AggregateImplementation] == ["DENSE", "SPARSE"]
  x = np.random.default_rng(0).normal(size=(3, 4, 4, 2))

  def net(padding):
    return stax.serial(stax.Conv(4, (2, 2), padding=padding), stax.Relu(),
                       stax.AvgPool((2, 2), padding=padding), stax.Flatten(),
                       stax.Dense(6), stax.Relu())

  a = net(stax.Padding.SAME).kernel_fn(x, None, "ntk")
  b = net("SAME").kernel_fn(x, None, "ntk")
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  seq = np.random.default_rng(1).normal(size=(3, 5, 4))
  attn = lambda m, pe: stax.serial(stax.Dense(4), stax.GlobalSelfAttention(
      4, 4, 4, 2, attention_mechanism=m, pos_emb_type=pe), stax.GlobalAvgPool(), stax.Dense(1))
  np.testing.assert_array_equal(
      np.asarray(attn(stax.AttentionMechanism.RELU, stax.PositionalEmbedding.SUM).kernel_fn(
          seq, None, "ntk")),
      np.asarray(attn("RELU", "SUM").kernel_fn(seq, None, "ntk")))
