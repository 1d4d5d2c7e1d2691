"""Atomic writes of run folders (write to a temporary file, then rename)."""
import io as _io
import json
import os
import tempfile

import numpy as np


def _atomic_bytes(path, data: bytes):
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text(path, text: str):
  _atomic_bytes(path, text.encode("utf-8"))


def write_json(path, obj):
  write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float))


def write_jsonl(path, records):
  write_text(path, "".join(json.dumps(r, sort_keys=True, default=float) + "\n"
                           for r in records))


def read_jsonl(path):
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def write_npz(path, **arrays):
  buf = _io.BytesIO()
  np.savez(buf, **{k: v for k, v in arrays.items() if v is not None})
  _atomic_bytes(path, buf.getvalue())


def read_npz(path):
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


def save_figure(fig, path):
  buf = _io.BytesIO()
  fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
  _atomic_bytes(path, buf.getvalue())
