"""Speed and accuracy benchmarks, side by side with neural-tangents and the published
reference algorithms (see docs/benchmarks.md and benchmarks/RESULTS.md).

`benchmarks.registry.CASES` lists the cases; `benchmarks.harness` holds what they
share; `python -m benchmarks.run_all` runs the suite. Results go to a run folder
(``--out``), never into tracked files; `benchmarks/RESULTS.md` is rewritten only
with ``--write_table``.
"""
