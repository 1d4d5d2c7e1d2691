"""The comparison both empirical-NTK cases make: our implementations against
neural-tangents' on the same function, parameters and inputs.

Each side is compiled ahead of time (compile time kept as the first call), the
executions alternate (`harness.interleave`), the values are compared with
``ours/structured``, and the rows put fastest against fastest first, then each
method against the same method.
"""
from __future__ import annotations

import time

import numpy as np

from benchmarks import harness

NT_NAMES = {1: "jacobian_contraction", 2: "ntk_vector_products", 3: "structured_derivatives"}
OURS_FOR = {1: "jacobian", 2: "ntvp", 3: "structured"}


class Comparison:
  """Contenders, their compile times, first values and failures, filled side by side."""

  def __init__(self, ctx):
    self.ctx = ctx
    self.contenders, self.compile_s, self.values, self.failed = {}, {}, {}, {}

  def add_ours(self, key: str, fn, *args) -> None:
    """Compiles ``fn(*args)`` ahead of time and adds its timed execution as ``key``."""
    import jax  # pylint: disable=g-import-not-at-top
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    self.compile_s[key] = time.perf_counter() - t0

    def timed():
      t0 = time.perf_counter()
      out = jax.block_until_ready(compiled(*args))
      self.values.setdefault(key, np.asarray(out))
      return time.perf_counter() - t0
    self.contenders[key] = timed
    self.ctx.log(f"compiled {key} in {self.compile_s[key]:.1f} s")

  def add_reference(self, worker, key: str, name, **setup) -> None:
    """Sets up neural-tangents' ``empirical_setup(name=name, **setup)`` in the reference
    process and adds its timed execution as ``key`` (a failure is recorded, not raised)."""
    try:
      r = worker.call("empirical_setup" if "depth" in setup else "empirical_fn_setup",
                      name=name, **setup)
    except RuntimeError as e:
      lines = [l.strip() for l in str(e).splitlines() if "Error" in l]
      self.failed[key] = lines[-1] if lines else str(e).strip().splitlines()[-1]
      self.ctx.log(f"{key} does not run: {self.failed[key]}")
      return
    self.compile_s[key] = r["compile_s"]
    self.contenders[key] = lambda: worker.call("empirical_time", implementation=name)[0]
    self.ctx.log(f"compiled {key} in {r['compile_s']:.1f} s")

  def run(self, repeats: int, budget_s: float) -> dict:
    """Alternates the contenders; returns their statistics."""
    self.times = harness.interleave(self.contenders, repeats, budget_s=budget_s,
                                    log=self.ctx.log)
    self.stats = {k: harness.stats(v) for k, v in self.times.items()}
    return self.stats

  def fetch_reference(self, worker, key: str, name) -> None:
    """The reference's values of ``key`` (when it ran), for the difference columns."""
    if worker is not None and key in self.stats:
      path = worker.call("empirical_values", implementation=name,
                         out_npz=str(self.ctx.tmp / f"nt_{name}.npz"))
      self.values[key] = np.load(path)["ntk"]

  def rows(self, impls, note: str, target: float = 2.0) -> tuple:
    """(rows, differences): fastest against fastest, then each method against its own."""
    st, compile_s = self.stats, self.compile_s
    base = self.values["ours/structured"]
    diffs = {k: harness.max_rel_diff(v, base) for k, v in self.values.items()
             if k.startswith(("ours/", "nt/")) and k != "ours/structured"}
    rows = []
    ours_best = min((k for k in st if k.startswith("ours/")), key=lambda k: st[k]["median"])
    nt = {k: v for k, v in st.items() if k.startswith("nt/")}
    if not nt:
      return [harness.row(f"{ours_best} (no reference)", st[ours_best],
                          first_call=dict(ours=compile_s[ours_best]))], diffs
    nt_best = min(nt, key=lambda k: nt[k]["median"])
    rows.append(harness.row(
        f"fastest against fastest: {ours_best} vs {nt_best}", st[ours_best], st[nt_best],
        reference_name=nt_best.replace("nt/", "neural-tangents "),
        first_call=dict(ours=compile_s[ours_best], reference=compile_s[nt_best]),
        max_diff=diffs.get(nt_best), target=target, note=note))
    for i in impls:
      key, ours = f"nt/{NT_NAMES[i]}", f"ours/{OURS_FOR[i]}"
      if key in st and not (key == nt_best and ours == ours_best):
        rows.append(harness.row(f"{ours} vs the same method", st[ours], st[key],
                                reference_name=key.replace("nt/", "neural-tangents "),
                                first_call=dict(ours=compile_s[ours], reference=compile_s[key]),
                                max_diff=diffs.get(key)))
    return rows, diffs

  def failure_rows(self) -> list:
    return [harness.row(f"{key} failed", None, note=why[:120]) for key, why in self.failed.items()]
