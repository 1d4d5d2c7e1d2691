"""What every benchmark case shares: timing, statistics, rows of the table, the case CLI.

A case is a module ``benchmarks/<name>.py`` with

* ``TITLE``: one line saying what it measures;
* ``run(ctx) -> dict(rows=[...], details={...})``: ``ctx`` is a `Context` (the
  suite, the reference worker when one is wanted, a scratch folder, a logger);
  each row comes from `row` and becomes one line of the table;
* ``if __name__ == "__main__": harness.case_main(run)``, so that
  ``python -m benchmarks.<name> --suite=quick --out=DIR`` runs it alone.

`benchmarks.registry.CASES` lists the cases the suite runs.
"""
from __future__ import annotations

import argparse
import datetime
import os
import pathlib
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from kernels import runs

SUITES = ("quick", "full")


# -- machine ------------------------------------------------------------------


def cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def machine_info() -> dict:
  """Platform, processor, CPU count, load at the start and the date (UTC)."""
  try:
    load = [round(v, 2) for v in os.getloadavg()]
  except OSError:
    load = None
  return dict(platform=platform.platform(), cpu_model=cpu_model(), cpu_count=os.cpu_count(),
              load_average_at_start=load, python=platform.python_version(),
              date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def device_info() -> dict:
  """The JAX backend and its devices (kind and count)."""
  import jax  # pylint: disable=g-import-not-at-top
  devices = jax.devices()
  return dict(backend=jax.default_backend(), count=len(devices),
              kind=getattr(devices[0], "device_kind", str(devices[0])))


def versions() -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import scipy  # pylint: disable=g-import-not-at-top
  return dict(jax=jax.__version__, jaxlib=jaxlib.__version__, numpy=np.__version__,
              scipy=scipy.__version__)


# -- timing -------------------------------------------------------------------


def stats(times: Sequence[float]) -> dict:
  """Median, min and max of timings in seconds (and the timings themselves)."""
  times = [float(t) for t in times]
  if not times:
    raise ValueError("times must hold at least one timing")
  return dict(median=float(statistics.median(times)), min=min(times), max=max(times),
              repeats=len(times), times=times)


def timer(fn: Callable) -> Callable[[], float]:
  """A callable that runs ``fn()`` to completion (block_until_ready) and returns seconds."""
  import jax  # pylint: disable=g-import-not-at-top

  def run() -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0
  return run


def interleave(contenders: Dict[str, Callable[[], float]], repeats: int,
               budget_s: Optional[float] = None, log=None) -> Dict[str, list]:
  """Round-robin repeats over the contenders, so that outside load hits all alike.

  Each callable returns one timing in seconds. With ``budget_s`` a contender
  stops once its timings add up to more than that (after at least one).
  """
  if repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {repeats}")
  times = {k: [] for k in contenders}
  for r in range(repeats):
    for name, fn in contenders.items():
      if budget_s is not None and times[name] and sum(times[name]) >= budget_s:
        continue
      times[name].append(fn())
    if log:
      log(f"repeat {r + 1}/{repeats}: " +
          ", ".join(f"{k} {v[-1]:.4g}s" for k, v in times.items() if v))
  return times


def max_rel_diff(a, b) -> float:
  """max |a - b| / max |b| in float64 (the largest difference relative to the largest value)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if a.shape != b.shape:
    raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# -- rows ---------------------------------------------------------------------


def row(what: str, ours: Optional[dict], reference: Optional[dict] = None, *,
        reference_name: str = "", first_call: Optional[dict] = None,
        max_diff: Optional[float] = None, target: Optional[float] = None,
        target_text: str = "", note: str = "") -> dict:
  """One line of the table.

  ``ours`` and ``reference`` are `stats` dictionaries; the ratio is reference
  median / our median (above 1: ours is faster). ``target`` is the least ratio
  the case promises; ``met`` says whether the measured ratio reaches it.
  ``first_call`` holds first-call seconds (compilation included) by contender.
  """
  ratio = None
  if ours is not None and reference is not None:
    ratio = reference["median"] / ours["median"]
  met = None if target is None or ratio is None else bool(ratio >= target)
  return dict(what=what, ours=ours, reference=reference, reference_name=reference_name,
              ratio=ratio, first_call=first_call or {}, max_diff=max_diff, target=target,
              target_text=target_text or (f">= {target:g}x" if target is not None else ""),
              met=met, note=note)


# -- context and the case CLI -----------------------------------------------


class Context:
  """What a case gets: suite name, reference worker on demand, scratch folder, logger."""

  def __init__(self, suite: str = "quick", reference: bool = True, name: str = "case",
                verbose: bool = True):
    if suite not in SUITES:
      raise ValueError(f"suite must be one of {SUITES}, got {suite!r}")
    self.suite = suite
    self.full = suite == "full"
    self.reference = reference
    self.name = name
    self.verbose = verbose
    self.tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"bench_{name}_"))
    self._worker = None

  def log(self, *parts) -> None:
    if self.verbose:
      print(f"[{self.name}]", *parts, file=sys.stderr, flush=True)

  def worker(self):
    """The neural-tangents reference process (started on first use), or None without reference."""
    if not self.reference:
      return None
    if self._worker is None:
      from benchmarks import reference_env  # pylint: disable=g-import-not-at-top
      self.log("starting the neural-tangents reference process")
      self._worker = reference_env.Worker()
    return self._worker

  def close(self) -> None:
    if self._worker is not None:
      self._worker.close()
      self._worker = None
    shutil.rmtree(self.tmp, ignore_errors=True)


def run_case(name: str, run_fn: Callable, suite: str = "quick", reference: bool = True,
             verbose: bool = True) -> dict:
  """Runs one case; returns its result with the machine, device and versions."""
  ctx = Context(suite, reference, name, verbose)
  result = dict(case=name, suite=suite, machine=machine_info(), device=device_info(),
                versions=dict(main=versions()))
  t0 = time.perf_counter()
  try:
    out = run_fn(ctx)
    if ctx._worker is not None:  # pylint: disable=protected-access
      result["versions"]["reference"] = ctx._worker.call("versions")  # pylint: disable=protected-access
  finally:
    ctx.close()
  result.update(rows=out["rows"], details=out.get("details", {}),
                wall_s=time.perf_counter() - t0)
  return result


def case_main(run_fn: Callable, argv=None) -> dict:
  """Command line of one case: ``--suite``, ``--out`` (folder), ``--no_reference``."""
  name = pathlib.Path(sys.modules[run_fn.__module__].__file__).stem
  p = argparse.ArgumentParser(prog=f"benchmarks.{name}",
                              description=sys.modules[run_fn.__module__].__doc__)
  p.add_argument("--suite", default="quick", choices=SUITES)
  p.add_argument("--out", default=None,
                 help=f"folder for {name}.json (default runs/bench_<date>)")
  p.add_argument("--no_reference", "--no-reference", action="store_true",
                 help="skip neural-tangents (no reference environment needed)")
  a = p.parse_args(argv)
  out = pathlib.Path(a.out or default_out())
  result = run_case(name, run_fn, a.suite, not a.no_reference)
  runs.write_json(out / f"{name}.json", result)
  for r in result["rows"]:
    print(format_row(name, r))
  print(f"wrote {out / f'{name}.json'}", file=sys.stderr)
  return result


def default_out() -> str:
  stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d_%H%M%S")
  return os.path.join("runs", f"bench_{stamp}")


# -- formatting -----------------------------------------------------------------


def fmt_s(s: Optional[dict]) -> str:
  """'median (min-max)' with a unit suited to the size."""
  if not s:
    return ""
  med, lo, hi = s["median"], s["min"], s["max"]
  if med < 1e-2:
    return f"{med * 1e3:.3g} ms ({lo * 1e3:.3g}-{hi * 1e3:.3g})"
  return f"{med:.3g} s ({lo:.3g}-{hi:.3g})"


def format_row(case: str, r: dict) -> str:
  ratio = "" if r["ratio"] is None else f"ratio {r['ratio']:.3g}x"
  parts = [f"{case}: {r['what']}", f"ours {fmt_s(r['ours'])}"]
  if r["reference"]:
    parts.append(f"{r['reference_name']} {fmt_s(r['reference'])}")
  parts += [p for p in (ratio, r["target_text"] and f"target {r['target_text']}",
                        "" if r["met"] is None else ("met" if r["met"] else "NOT met"),
                        "" if r["max_diff"] is None else f"max diff {r['max_diff']:.2g}",
                        r["note"]) if p]
  return " | ".join(parts)
