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


def _file_mode() -> int:
  """0666 less the process's umask: what ``open`` would give (mkstemp gives 0600)."""
  umask = os.umask(0)
  os.umask(umask)
  return 0o666 & ~umask


def atomic_write_bytes(path: "str | os.PathLike", data: bytes) -> None:
  """Writes a file atomically: to a temporary file in the same folder, then renamed."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
  try:
    os.fchmod(fd, _file_mode())
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def jsonable(x: Any):
  """``x`` with arrays as lists, tuples as lists and keys as strings (what JSON holds)."""
  if hasattr(x, "tolist"):
    return x.tolist()
  if isinstance(x, dict):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  return x


def write_via(path, writer) -> None:
  """Calls ``writer(tmp_path)`` to create a file, then renames it to ``path``."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=path.suffix)
  os.close(fd)
  try:
    writer(tmp)
    os.chmod(tmp, _file_mode())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_text(path, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path, obj: Any) -> None:
  write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True, default=float) + "\n")


def write_jsonl(path, records: Iterable[dict]) -> None:
  write_text(path, "".join(json.dumps(jsonable(r), sort_keys=True, default=float) + "\n"
                           for r in records))


def read_jsonl(path) -> list:
  path = pathlib.Path(path)
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_npz(path, **arrays) -> None:
  import io
  import numpy as np
  buf = io.BytesIO()
  np.savez(buf, **{k: v for k, v in arrays.items() if v is not None})
  atomic_write_bytes(path, buf.getvalue())


def read_npz(path) -> dict:
  import numpy as np
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


def figure(nrows: int = 1, ncols: int = 1, **kwargs):
  """A figure and its axes made outside pyplot (``Figure.subplots``).

  Drawing needs no display and never switches the matplotlib backend, so a notebook
  that imports a plotting module keeps showing its figures; nothing is left open.
  ``figsize``, ``dpi`` and ``layout`` go to the figure, the rest to ``subplots``.
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(**{k: kwargs.pop(k) for k in ("figsize", "dpi", "layout") if k in kwargs})
  return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path) -> None:
  import io
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
  atomic_write_bytes(path, buf.getvalue())


# Recorded in config.json beside the config, but free to differ on a rerun.
ENVIRONMENT_FIELDS = ("jax_version", "backend")


def check_resumable(path, config: dict, extendable=()) -> None:
  """Raises ValueError unless the folder ``path`` is new or holds a run of ``config``.

  Fields named in ``extendable`` (lists such as the widths) may differ: a rerun
  computes the new entries and keeps the recorded ones. Nothing is written.
  """
  file = pathlib.Path(path) / "config.json"
  if not file.exists():
    return
  try:
    old = json.loads(file.read_text())
  except (OSError, ValueError) as e:
    raise ValueError(f"--out: {file} cannot be read ({e}); choose another folder.") from None
  new = jsonable(config)
  skip = set(extendable) | set(ENVIRONMENT_FIELDS)
  differ = [k for k in sorted(set(old) | set(new)) if k not in skip and old.get(k) != new.get(k)]
  if differ:
    k = differ[0]
    raise ValueError(f"--out={str(path)!r} holds a run of another config (config.{k}: "
                     f"{old.get(k)!r} there, {new.get(k)!r} now); choose another --out or "
                     "remove the folder.")


class RunDir:
  """One experiment's folder; metrics are records with a unique ``key``."""

  def __init__(self, path: "str | os.PathLike"):
    self.path = pathlib.Path(path)
    self.path.mkdir(parents=True, exist_ok=True)
    self._metrics = self.path / "metrics.jsonl"

  def start(self, config: dict, **environment) -> None:
    """Writes config.json: the config's fields and the environment (jax version, backend)."""
    self.write_json("config.json", {**jsonable(config), **environment})

  def write_json(self, name: str, obj: Any) -> pathlib.Path:
    write_json(self.path / name, obj)
    return self.path / name

  def write_text(self, name: str, text: str) -> pathlib.Path:
    write_text(self.path / name, text)
    return self.path / name

  def records(self) -> list:
    return read_jsonl(self._metrics)

  def done(self) -> set:
    return {r["key"] for r in self.records() if "key" in r}

  def append(self, record: dict) -> None:
    """Adds one record (rewrites metrics.jsonl atomically)."""
    if "key" not in record:
      raise ValueError("a metrics record needs a 'key'.")
    records = [r for r in self.records() if r.get("key") != record["key"]]
    write_jsonl(self._metrics, records + [record])

  def save_figure(self, fig, name: str) -> pathlib.Path:
    save_figure(fig, self.path / name)
    return self.path / name
