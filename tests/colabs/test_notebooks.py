"""The notebooks in colabs/: each runs top to bottom at smoke size, is stored without outputs,
and is linked from the README."""
import json
import os
import pathlib
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "colabs").glob("*.ipynb"))
SMOKE_BUDGET_S = 420  # one notebook at smoke size: 60-350 s measured on 2 cores shared with other jobs


def test_five_numbered_notebooks():
  names = [p.name for p in NOTEBOOKS]
  assert len(names) == 5, names
  assert [n[:3] for n in names] == ["01_", "02_", "03_", "04_", "05_"], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_stripped(path):
  nb = json.loads(path.read_text())
  for i, cell in enumerate(nb["cells"]):
    if cell["cell_type"] == "code":
      assert cell.get("outputs") == [], f"{path.name}: cell {i} has outputs"
      assert cell.get("execution_count") is None, f"{path.name}: cell {i} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_installs_only_when_needed(path):
  nb = json.loads(path.read_text())
  code = [c for c in nb["cells"] if c["cell_type"] == "code"]
  first = "".join(code[0]["source"])
  assert 'find_spec("kernels") is None' in first and "pip" in first
  assert any('os.environ.get("WIDENETS_SMOKE")' in "".join(c["source"]) for c in code[:3])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_linked_from_readme(path):
  assert f"colabs/{path.name}" in (ROOT / "README.md").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom_at_smoke_size(path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("WIDENETS_SMOKE", "1")
  # A notebook runs where Colab runs it: one CPU device, not the suite's two simulated ones.
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  nb = nbformat.read(str(path), as_version=4)
  client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                   resources={"metadata": {"path": str(path.parent)}})
  t0 = time.perf_counter()
  client.execute()  # raises CellExecutionError on the first failing cell
  seconds = time.perf_counter() - t0
  images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
               for o in c.outputs)
  assert images >= 2, f"{path.name} drew {images} figures"
  assert seconds < SMOKE_BUDGET_S, f"{path.name} took {seconds:.0f} s at smoke size"
