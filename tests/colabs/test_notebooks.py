"""The notebooks in colabs/: each runs top to bottom at smoke size, is stored without outputs,
and is linked from the README."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "colabs").glob("*.ipynb"))
RUNNER = pathlib.Path(__file__).with_name("run_notebook.py")
SMOKE_BUDGET_S = 600  # one notebook at smoke size: 60-360 s measured on 2 cores shared with the suite (the slowest machine: 04 in 359 s)


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
def test_runs_top_to_bottom_at_smoke_size(path):
  pytest.importorskip("nbformat")
  pytest.importorskip("nbclient")
  # A notebook runs where Colab runs it: one CPU device, not the suite's two simulated ones.
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(WIDENETS_SMOKE="1", PYTHONPATH=str(ROOT))
  # Its own process: the Jupyter client's sockets and threads stay out of this test worker.
  r = subprocess.run([sys.executable, str(RUNNER), str(path)], env=env, capture_output=True,
                     text=True, timeout=SMOKE_BUDGET_S + 300)
  assert r.returncode == 0, f"{path.name} failed:\n{r.stderr[-6000:]}"
  result = json.loads(r.stdout.strip().splitlines()[-1])
  assert result["images"] >= 2, f"{path.name} drew {result['images']} figures"
  assert result["seconds"] < SMOKE_BUDGET_S, f"{path.name} took {result['seconds']:.0f} s at smoke size"
