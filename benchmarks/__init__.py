"""Speed and accuracy benchmarks, side by side with neural-tangents (see docs/benchmarks.md).

Shared helpers: machine description, medians and atomic JSON results.
"""
import datetime
import json
import os
import pathlib
import platform
import statistics
from typing import Any, Sequence

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def machine_info() -> dict:
  """Platform, processor, CPU count, load and the date of the run."""
  try:
    load = os.getloadavg()
  except OSError:
    load = None
  return dict(platform=platform.platform(), processor=platform.processor() or "",
              cpu_model=cpu_model(), cpu_count=os.cpu_count(), load_average_at_start=load,
              python=platform.python_version(),
              date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def main_versions() -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jaxlib  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return dict(jax=jax.__version__, jaxlib=jaxlib.__version__, numpy=np.__version__,
              devices=[str(d) for d in jax.devices()])


def median(xs: Sequence[float]) -> float:
  return float(statistics.median(xs))


def write_json(name: str, data: Any) -> pathlib.Path:
  """Writes ``benchmarks/results/<name>.json`` atomically (write, then rename)."""
  RESULTS.mkdir(parents=True, exist_ok=True)
  path = RESULTS / f"{name}.json"
  tmp = path.with_suffix(".json.tmp")
  tmp.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
  os.replace(tmp, path)
  return path
