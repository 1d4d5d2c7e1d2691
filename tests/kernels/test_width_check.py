"""The main job at reduced size: measured rates in width, run folder and resume."""
import json
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from kernels import program, runs, width_check


@pytest.mark.slow
def test_rates_and_run_folder(tmp_path):
  out = tmp_path / "run"
  kw = dict(widths=[64, 256, 1024], parameterizations=["ntk", "mup"], seeds=3, n_points=16,
            depth=1, activation="relu", steps=30, lr_fraction=1.0, dataset="digits", seed=0,
            progress=False)
  s = width_check.run_experiment(str(out), **kw)
  for p in ("ntk", "mup"):
    print(p, {q: round(s[p][q]["slope"], 3) for q in width_check.RATES})
    # Kernels at initialisation converge like width^-1/2.
    assert -0.8 < s[p]["nngp_err"]["slope"] < -0.3
    assert -0.8 < s[p]["ntk_err"]["slope"] < -0.3
    for q in width_check.RATES:  # 95% intervals around the slopes
      assert s[p][q]["low"] < s[p][q]["slope"] < s[p][q]["high"]
  # Lazy under ntk, feature learning under mup.
  assert s["ntk"]["ntk_change"]["slope"] < -0.4
  assert abs(s["mup"]["ntk_change"]["slope"]) < 0.2
  assert s["mup"]["ntk_change"]["mean"][-1] > 10 * s["ntk"]["ntk_change"]["mean"][-1]
  for name in ("config.json", "metrics.jsonl", "summary.json", "summary.md", "rates.png",
               "loss_curves.png"):
    assert (out / name).exists()
  # A rerun resumes: nothing is recomputed, the same summary comes back.
  before = (out / "metrics.jsonl").read_text()
  s2 = width_check.run_experiment(str(out), **kw)
  assert (out / "metrics.jsonl").read_text() == before
  assert json.loads(json.dumps(s2)) == json.loads((out / "summary.json").read_text())


def _program(*args, cwd, **env):
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  return subprocess.run([sys.executable, "-m", "kernels.width_check", *args], cwd=cwd,
                        env=dict(os.environ, PYTHONPATH=root, **env), capture_output=True,
                        text=True, timeout=300)


TINY = ["--config.widths=16,64", "--config.parameterizations=ntk", "--config.seeds=2",
        "--config.n_points=6", "--config.depth=1", "--config.steps=3", "--config.cnn_widths=8",
        "--config.init_seeds=3", "--config.cnn_init_seeds=5"]


def test_program_runs_end_to_end_and_resumes(tmp_path):
  out = tmp_path / "run"
  cache = tmp_path / "compiled"
  r = _program(f"--out={out}", *TINY, cwd=tmp_path, WIDENETS_COMPILE_CACHE=str(cache))
  assert r.returncode == 0, r.stderr
  assert any(cache.iterdir()), "the program kept no compiled program (kernels.compile_cache)"
  assert "NNGP error" in r.stdout
  config = json.loads((out / "config.json").read_text())
  assert config["widths"] == [16, 64] and config["seeds"] == 2 and config["activation"] == "relu"
  keys = [json.loads(line)["key"] for line in (out / "metrics.jsonl").read_text().splitlines()]
  assert keys == ["ntk/16", "ntk/64", "cnn/ntk/8"]
  assert config["cnn_widths"] == [8]
  # The kernel errors at initialisation come from more networks than are trained.
  recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
  assert [len(r["nngp_err"]) for r in recs] == [3, 3, 5]
  assert [len(r["ntk_err"]) for r in recs] == [3, 3, 5]
  assert [len(r["ntk_change"]) for r in recs] == [2, 2, 2]
  for name in ("summary.json", "summary.md", "rates.png", "loss_curves.png"):
    assert (out / name).exists(), name
  # A rerun of the same config recomputes nothing; one of another config is refused.
  before = (out / "metrics.jsonl").read_text()
  cfg = program.load_config_file(width_check.PROGRAM.default_config_path)
  cfg.update(widths=(16, 64), parameterizations=("ntk",), seeds=2, n_points=6, depth=1, steps=3,
             cnn_widths=(8,), init_seeds=3, cnn_init_seeds=5)
  width_check.PROGRAM.prepare(cfg, str(out))
  s = width_check.run(cfg, str(out), progress=False)
  assert (out / "metrics.jsonl").read_text() == before
  assert s["ntk"]["widths"] == [16, 64]
  bad = _program(f"--out={out}", *TINY, "--config.seeds=3", cwd=tmp_path)
  assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
      f"kernels.width_check: error: --out={str(out)!r} holds a run of another config "
      "(config.seeds: 2 there, 3 now); choose another --out or remove the folder."]
  assert (out / "metrics.jsonl").read_text() == before


def test_rates_are_printed_with_their_interval():
  assert width_check.rate_text({"slope": -0.5234, "low": -0.61, "high": -0.4}) == (
      "-0.523 [-0.610, -0.400]")
  nan = float("nan")  # two widths: no interval
  assert width_check.rate_text({"slope": -0.5, "low": nan, "high": nan}) == "-0.500"


@pytest.mark.parametrize("field,value", [
    ("widths", ("abc",)), ("seeds", 0), ("widths", (64, 0)), ("widths", (64, 64)),
    ("parameterizations", ("ntk", "bogus")), ("n_points", 1), ("lr_fraction", -1.0),
    ("lr_fraction", float("nan")), ("activation", "swish"), ("dataset", "mnist"),
    ("depth", 0), ("steps", -3), ("cnn_widths", (8, -1)), ("dataset", "synthetic"),
    ("init_seeds", 2), ("cnn_init_seeds", 0),
])
def test_bad_config_field_is_rejected_with_its_name(tmp_path, field, value):
  cfg = program.load_config_file(width_check.PROGRAM.default_config_path)
  cfg[field] = value
  with pytest.raises(ValueError, match=f"config.{field}"):
    width_check.PROGRAM.prepare(cfg, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args,message", [
    (["--config.seeds=0"], "config.seeds must be an integer >= 1, got 0."),
    (["--config.init_seeds=2"], "config.init_seeds must be >= config.seeds"),
    (["--config.seeds=x"], "--config.seeds=x"),
    (["--config.parameterizations=ntk,bogus"], "config.parameterizations: Unknown"),
    (["--config.sedes=2"], "--config.sedes: config has no field 'sedes'"),
    (["--config=nope.py"], "--config file 'nope.py' not found"),
])
def test_program_rejects_bad_config_in_one_line_before_writing(tmp_path, args, message):
  out = tmp_path / "run"
  r = _program(f"--out={out}", *args, cwd=tmp_path)
  assert r.returncode == 1, r.stderr
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("kernels.width_check: error: "), r.stderr
  assert message in lines[0]
  assert not out.exists()


def test_run_files_are_readable_as_the_umask_allows(tmp_path):
  old = os.umask(0o022)
  try:
    runs.RunDir(tmp_path / "r").write_json("config.json", {"a": 1})
    runs.write_via(tmp_path / "r" / "x.txt", lambda p: open(p, "w").write("x"))
  finally:
    os.umask(old)
  for name in ("config.json", "x.txt"):
    assert stat.S_IMODE(os.stat(tmp_path / "r" / name).st_mode) == 0o644


def test_each_series_takes_its_rate_from_its_own_kernel():
  """The MLP's NTK is the same under ntk and mup, so is its rate; the CNN's mup NTK is
  larger, so its rate is smaller and its linearised prediction stays stable (with the ntk
  rate it diverged and the distance to it was exactly 1 at every width)."""
  x, _, _, _ = width_check.load_data("digits", 16, 0, n_test=16)
  xi, _, _, _ = width_check.load_data("digits", 16, 0, n_test=16, images=True)
  rate = lambda xx, arch, p: width_check.learning_rate(xx, 2, "relu", 1.0, arch, p)
  assert rate(x, "mlp", "mup") == pytest.approx(rate(x, "mlp", "ntk"), rel=1e-6)
  assert rate(xi, "cnn", "mup") < 0.5 * rate(xi, "cnn", "ntk")
