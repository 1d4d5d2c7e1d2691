"""The layer-spec language shared by the neural-tangents reference and the tests.

A network is a list of ``[name, arguments]`` specs, e.g.
``[["Dense", {"out_dim": 64, "W_std": 1.5}], ["Relu", {}], ["parallel", [[...], [...]]]]``.
`build` turns it into a network of any stax module with neural-tangents' names
(``neural_tangents.stax`` in the reference environment, ``kernels.stax`` here),
so both sides of the fixture read one description the same way. Pure Python: it
imports nothing, and runs in either environment.

Two marked values carry what JSON cannot: ``{"array": nested_lists}`` is an array
(``DotGeneral``'s ``rhs``, an ``Aggregate`` pattern), built by the ``array`` function
the caller passes (``numpy.asarray``, ``jax.numpy.asarray``); ``{"tuple": nested}`` is
nested tuples (``DotGeneral``'s ``dimension_numbers``). `decode` reads them, also in
a case's kernel keywords. No other argument is a dict, so other specs read as before.
"""


def build(spec, stax, functions, array=None):
  """``stax.serial`` of the specs; ``functions`` maps ElementwiseNumerical names to callables,
  ``array`` turns ``{"array": ...}`` values into arrays."""
  return stax.serial(*[_layer(name, arg, stax, functions, array) for name, arg in spec])


def decode(value, array=None):
  """A value with its ``{"array": ...}`` and ``{"tuple": ...}`` marks read (see above)."""
  if isinstance(value, dict):
    if set(value) == {"array"}:
      if array is None:
        raise ValueError("layer_specs: an {'array': ...} value needs the array function.")
      return array(value["array"])
    if set(value) == {"tuple"}:
      return _deep_tuple(value["tuple"], array)
    raise ValueError(f"layer_specs: a dict value must be {{'array': ...}} or {{'tuple': ...}}, "
                     f"got keys {sorted(value)}.")
  if isinstance(value, list):
    return [decode(v, array) for v in value]
  return value


def _deep_tuple(value, array):
  if isinstance(value, list):
    return tuple(_deep_tuple(v, array) for v in value)
  return decode(value, array)


def _layer(name, arg, stax, functions, array=None):
  if name == "serial":
    return build(arg, stax, functions, array)
  if name == "parallel":
    return stax.parallel(*[build(s, stax, functions, array) for s in arg])
  if name == "repeat":
    return stax.repeat(build(arg["layer"], stax, functions, array), arg["n"])
  if name == "Index":  # idx entries: integers, "..." or [start, stop, step] for a slice
    return stax.Index(tuple(Ellipsis if v == "..." else slice(*v) if isinstance(v, list) else v
                            for v in arg["idx"]), **{k: v for k, v in arg.items() if k != "idx"})
  if name == "ElementwiseNumerical":
    return stax.ElementwiseNumerical(functions[arg["fn"]], deg=arg["deg"])
  # JSON has no tuples; neural-tangents needs them for shapes (window_shape, axis, ...).
  # Function-valued arguments (``*_fn``) are named in ``functions``.
  return getattr(stax, name)(**{
      k: decode(v, array) if isinstance(v, dict) else tuple(v) if isinstance(v, list) else
      (functions[v] if k.endswith("_fn") and isinstance(v, str) else v)
      for k, v in arg.items()})
