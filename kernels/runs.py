"""A run's output folder: config.json, metrics.jsonl, PNG figures and summary.md.

Every write is atomic (write to a temporary file in the same folder, then
``os.replace``), so an interrupted run never leaves a half-written file, and
`RunDir.done` lets a rerun skip work whose metrics are already recorded.
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile
from typing import Any, Iterable


def _atomic_write_bytes(path: pathlib.Path, data: bytes) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _jsonable(x: Any):
  if hasattr(x, "tolist"):
    return x.tolist()
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  return x


class RunDir:
  """One experiment's folder; metrics are records with a unique ``key``."""

  def __init__(self, path: "str | os.PathLike"):
    self.path = pathlib.Path(path)
    self.path.mkdir(parents=True, exist_ok=True)
    self._metrics = self.path / "metrics.jsonl"

  def write_json(self, name: str, obj: Any) -> pathlib.Path:
    p = self.path / name
    _atomic_write_bytes(p, (json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n").encode())
    return p

  def write_text(self, name: str, text: str) -> pathlib.Path:
    p = self.path / name
    _atomic_write_bytes(p, text.encode())
    return p

  def records(self) -> list:
    if not self._metrics.exists():
      return []
    out = []
    for line in self._metrics.read_text().splitlines():
      if line.strip():
        out.append(json.loads(line))
    return out

  def done(self) -> set:
    return {r["key"] for r in self.records() if "key" in r}

  def append(self, record: dict) -> None:
    """Adds one record (rewrites metrics.jsonl atomically)."""
    if "key" not in record:
      raise ValueError("a metrics record needs a 'key'.")
    lines = [json.dumps(r, sort_keys=True) for r in self.records() if r.get("key") != record["key"]]
    lines.append(json.dumps(_jsonable(record), sort_keys=True))
    _atomic_write_bytes(self._metrics, ("\n".join(lines) + "\n").encode())

  def save_figure(self, fig, name: str) -> pathlib.Path:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    p = self.path / name
    _atomic_write_bytes(p, buf.getvalue())
    return p


def fit_log_slope(xs: Iterable[float], ys: Iterable[float]):
  """Least-squares slope and intercept of log(y) against log(x)."""
  import numpy as np
  lx, ly = np.log(np.asarray(list(xs), float)), np.log(np.asarray(list(ys), float))
  slope, intercept = np.polyfit(lx, ly, 1)
  return float(slope), float(intercept)
