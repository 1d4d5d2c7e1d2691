"""The benchmark suite's machinery: statistics, alternated timing, rows, the table, the CLI."""
import json
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from benchmarks import harness
from benchmarks import registry
from benchmarks import run_all
from benchmarks import table

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_stats_median_min_max():
  s = harness.stats([3.0, 1.0, 2.0, 10.0])
  assert (s["median"], s["min"], s["max"], s["repeats"]) == (2.5, 1.0, 10.0, 4)
  with pytest.raises(ValueError, match="times"):
    harness.stats([])


def test_interleave_alternates_and_respects_budget():
  order = []

  def make(name, seconds):
    def f():
      order.append(name)
      return seconds
    return f
  times = harness.interleave(dict(a=make("a", 0.1), b=make("b", 5.0)), repeats=3, budget_s=4.0)
  assert order == ["a", "b", "a", "a"]  # b used its budget after one run
  assert times == dict(a=[0.1, 0.1, 0.1], b=[5.0])
  with pytest.raises(ValueError, match="repeats"):
    harness.interleave(dict(a=make("a", 1.0)), repeats=0)


def test_row_ratio_target_and_max_diff():
  fast, slow = harness.stats([1.0, 1.2]), harness.stats([4.0, 4.4])
  r = harness.row("x", fast, slow, reference_name="ref", target=3.0,
                  max_diff=harness.max_rel_diff([1.0, 2.0], [1.0, 2.2]))
  assert r["ratio"] == pytest.approx(4.2 / 1.1) and r["met"] is True
  assert r["max_diff"] == pytest.approx(0.2 / 2.2)
  assert harness.row("x", slow, fast, target=3.0)["met"] is False
  with pytest.raises(ValueError, match="shapes"):
    harness.max_rel_diff(np.zeros(2), np.zeros(3))


def _matmul_case(ctx):
  """A real comparison: a jitted product against the same product in a Python loop."""
  import jax  # pylint: disable=g-import-not-at-top
  a = np.random.default_rng(0).normal(size=(40, 40)).astype(np.float32)
  f = jax.jit(lambda x: x @ x)
  ours = harness.timer(lambda: f(a))
  first = ours()

  def loop():
    t0 = time.perf_counter()
    out = [[sum(float(a[i, k]) * float(a[k, j]) for k in range(40)) for j in range(40)]
           for i in range(40)]
    loop.value = np.asarray(out)
    return time.perf_counter() - t0
  times = harness.interleave(dict(ours=ours, loop=loop), repeats=2)
  diff = harness.max_rel_diff(np.asarray(f(a)), loop.value)
  return dict(rows=[harness.row("40x40 product", harness.stats(times["ours"]),
                                harness.stats(times["loop"]), reference_name="Python loop",
                                first_call=dict(ours=first), max_diff=diff, target=1.0)])


def test_run_case_and_table():
  result = harness.run_case("matmul", _matmul_case, reference=False, verbose=False)
  assert result["device"]["count"] >= 1 and result["versions"]["main"]["jax"]
  (r,) = result["rows"]
  assert r["ratio"] > 1 and r["met"] and r["max_diff"] < 1e-5
  json.dumps(result)  # JSON-serialisable as written
  text = table.markdown([result], "quick", {"other": "exit status 1"})
  assert "| matmul | 40x40 product |" in text and "did not finish" in text
  assert f"{r['ratio']:.3g}x" in text


def test_registry_lists_present_cases():
  assert len(set(registry.CASES)) == len(registry.CASES)
  for name in ("kernel_speed", "empirical_speed", "dmft_speed", "scaling_fit_speed",
               "compile_speed"):
    assert name in run_all.present_cases()
  with pytest.raises(ValueError, match="--only"):
    run_all.select(["no_such_case"])


def test_cli_rejects_unknown_case_in_one_line(tmp_path):
  r = subprocess.run([sys.executable, "-m", "benchmarks.run_all", "--only=no_such_case",
                      f"--out={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True)
  assert r.returncode == 1
  assert r.stderr.strip().count("\n") == 0 and "no_such_case" in r.stderr
  assert not (tmp_path / "run").exists()
