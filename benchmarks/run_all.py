"""Runs every benchmark module in benchmarks/ and prints a summary table (``make bench``).

  python -m benchmarks.run_all [--no-reference] [--only kernel_speed,empirical_speed]

Each benchmark runs as its own ``python -m benchmarks.<name>`` process (one failure
does not stop the others) and writes benchmarks/results/<name>.json; the table is
built from those files, with the module's ``summary(result)`` when it has one.
"""
from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import subprocess
import sys
import time

import benchmarks

HERE = pathlib.Path(__file__).resolve().parent
KNOWN = ("kernel_speed", "empirical_speed", "dmft_speed", "scaling_fit_speed")
TAKES_NO_REFERENCE = ("kernel_speed", "empirical_speed")


def present() -> list:
  """Benchmark modules present: the known ones in order, then any other *_speed.py."""
  names = [n for n in KNOWN if (HERE / f"{n}.py").exists()]
  names += sorted(p.stem for p in HERE.glob("*_speed.py") if p.stem not in names)
  return names


def _generic_summary(name: str, result: dict) -> list:
  rows = []
  for key in ("median_s", "ratios"):
    for k, v in (result.get(key) or {}).items():
      if isinstance(v, (int, float)):
        rows.append((f"{name}: {key}.{k}", f"{v:.4g}"))
  return rows or [(f"{name}", "done (see results json)")]


def summarize(name: str) -> list:
  path = benchmarks.RESULTS / f"{name}.json"
  if not path.exists():
    return [(name, "no results file")]
  result = json.loads(path.read_text())
  try:
    module = importlib.import_module(f"benchmarks.{name}")
    if hasattr(module, "summary"):
      return list(module.summary(result))
  except Exception as e:  # pylint: disable=broad-except
    return [(name, f"summary failed: {type(e).__name__}: {e}")] + _generic_summary(name, result)
  return _generic_summary(name, result)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--no-reference", action="store_true",
                 help="skip neural-tangents in the benchmarks that compare with it")
  p.add_argument("--only", default="", help="comma-separated benchmark names")
  a = p.parse_args(argv)
  names = present()
  if a.only:
    wanted = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(names))
    if unknown:
      raise SystemExit(f"unknown benchmarks {unknown}; present: {names}")
    names = [n for n in names if n in wanted]
  status = {}
  for name in names:
    cmd = [sys.executable, "-m", f"benchmarks.{name}"]
    if a.no_reference and name in TAKES_NO_REFERENCE:
      cmd.append("--no-reference")
    print(f"=== {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=str(HERE.parent))
    status[name] = (rc, time.perf_counter() - t0)
  print("\n=== summary")
  width = 62
  for name in names:
    rc, seconds = status[name]
    print(f"--- {name} ({'ok' if rc == 0 else f'FAILED, exit {rc}'}, {seconds:.0f}s)")
    if rc == 0:
      for row, value in summarize(name):
        print(f"{row:{width}s} {value}")
  if any(rc != 0 for rc, _ in status.values()):
    sys.exit(1)


if __name__ == "__main__":
  main()
