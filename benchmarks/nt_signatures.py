"""neural-tangents 0.6.5's public ``stax`` signatures; runs in the reference environment.

  PYTHONPATH=benchmarks:. python benchmarks/nt_signatures.py fixture \\
      --out tests/fixtures/nt_signatures.json

For every public callable of ``neural_tangents.stax``: its parameters in order, each
with its default written as JSON (a number, string, boolean, None or list; ``"<required>"``
when it has none; ``"<callable>"`` for a function). tests/kernels/test_signatures.py
checks that ``kernels.stax`` has the same names, parameters and defaults, so that
switching is an import change.
"""
import inspect

import nt_reference  # noqa: E402  (its command line and versions, beside this script)
from neural_tangents import stax


def _default(p):
  if p.default is inspect.Parameter.empty:
    return "<required>"
  v = p.default
  if callable(v):
    return "<callable>"
  if isinstance(v, tuple):
    return list(v)
  if hasattr(v, "name") and not isinstance(v, (str, int, float)):  # an enum member
    return v.name
  return v


def make_fixture():
  sigs = {}
  for name in sorted(dir(stax)):
    f = getattr(stax, name)
    if name.startswith("_") or inspect.ismodule(f) or not callable(f):
      continue
    try:
      params = inspect.signature(f).parameters.values()
    except (TypeError, ValueError):
      continue
    sigs[name] = [[p.name, _default(p)] for p in params]
  return dict(description="neural-tangents 0.6.5's public stax signatures; regenerate with "
                          "`PYTHONPATH=benchmarks:. python benchmarks/nt_signatures.py fixture "
                          "--out tests/fixtures/nt_signatures.json` in the reference environment.",
              versions=nt_reference.versions(), signatures=sigs)


if __name__ == "__main__":
  nt_reference.main(fixture=make_fixture, description=__doc__)
