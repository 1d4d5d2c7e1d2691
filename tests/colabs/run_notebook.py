"""Executes one notebook top to bottom with nbclient; prints seconds and figures as JSON.

Run by tests/colabs/test_notebooks.py in its own process, so that the Jupyter client's
sockets, event loop and threads never live in a test worker that goes on running tests.
"""
import json
import sys
import time

import nbclient
import nbformat


def main(path: str) -> None:
  nb = nbformat.read(path, as_version=4)
  folder = path.rsplit("/", 1)[0] if "/" in path else "."
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": folder}})
  t0 = time.perf_counter()
  client.execute()  # raises CellExecutionError on the first failing cell
  seconds = time.perf_counter() - t0
  images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)
  print(json.dumps({"seconds": seconds, "images": images}))


if __name__ == "__main__":
  main(sys.argv[1])
