"""The layer-spec language shared by the neural-tangents reference and the tests.

A network is a list of ``[name, arguments]`` specs, e.g.
``[["Dense", {"out_dim": 64, "W_std": 1.5}], ["Relu", {}], ["parallel", [[...], [...]]]]``.
`build` turns it into a network of any stax module with neural-tangents' names
(``neural_tangents.stax`` in the reference environment, ``kernels.stax`` here),
so both sides of the fixture read one description the same way. Pure Python: it
imports nothing, and runs in either environment.
"""


def build(spec, stax, functions):
  """``stax.serial`` of the specs; ``functions`` maps ElementwiseNumerical names to callables."""
  return stax.serial(*[_layer(name, arg, stax, functions) for name, arg in spec])


def _layer(name, arg, stax, functions):
  if name == "serial":
    return build(arg, stax, functions)
  if name == "parallel":
    return stax.parallel(*[build(s, stax, functions) for s in arg])
  if name == "repeat":
    return stax.repeat(build(arg["layer"], stax, functions), arg["n"])
  if name == "Index":  # idx entries: integers, "..." or [start, stop, step] for a slice
    return stax.Index(tuple(Ellipsis if v == "..." else slice(*v) if isinstance(v, list) else v
                            for v in arg["idx"]))
  if name == "ElementwiseNumerical":
    return stax.ElementwiseNumerical(functions[arg["fn"]], deg=arg["deg"])
  # JSON has no tuples; neural-tangents needs them for shapes (window_shape, axis, ...).
  # Function-valued arguments (``*_fn``) are named in ``functions``.
  return getattr(stax, name)(**{
      k: tuple(v) if isinstance(v, list) else
      (functions[v] if k.endswith("_fn") and isinstance(v, str) else v)
      for k, v in arg.items()})
