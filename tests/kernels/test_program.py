"""The one program shape: default folders, config-field checks and resumable folders."""
import json
import os

import ml_collections
import pytest

from kernels import program, runs, width_check


def test_default_out_names_the_program_and_another_config():
  p = width_check.PROGRAM
  assert p.default_out(p.default_config_path) == os.path.join("runs", "width_check")
  assert p.default_out("elsewhere/wide.py:arg") == os.path.join("runs", "width_check_wide")


def test_field_checks_name_the_field():
  c = ml_collections.ConfigDict(dict(n=0, x=float("inf"), ws=(4, 4), names="ntk,,mup",
                                     flag="yes", pick="c", sub=dict(k=-1)))
  for check, field in ((lambda: program.int_field(c, "n", minimum=1), "config.n"),
                       (lambda: program.number_field(c, "x"), "config.x"),
                       (lambda: program.ints_field(c, "ws"), "config.ws"),
                       (lambda: program.names_field(c, "names"), "config.names"),
                       (lambda: program.bool_field(c, "flag"), "config.flag"),
                       (lambda: program.choice_field(c, "pick", ("a", "b")), "config.pick"),
                       (lambda: program.int_field(c, "sub.k", minimum=0), "config.sub.k"),
                       (lambda: program.int_field(c, "missing"), "config.missing")):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
      check()
  ok = ml_collections.ConfigDict(dict(names=("ntk,mup", "standard"), ws=(1, 2)))
  assert program.names_field(ok, "names") == ["ntk", "mup", "standard"]
  assert program.ints_field(ok, "ws") == [1, 2]


def test_a_folder_resumes_only_its_own_config(tmp_path):
  out = tmp_path / "run"
  runs.check_resumable(out, {"seeds": 2})  # a new folder
  runs.RunDir(out).start({"seeds": 2, "widths": [64]}, jax_version="0")
  assert json.loads((out / "config.json").read_text())["jax_version"] == "0"
  runs.check_resumable(out, {"seeds": 2, "widths": [64, 128]}, extendable=("widths",))
  with pytest.raises(ValueError, match=r"config\.seeds: 2 there, 3 now"):
    runs.check_resumable(out, {"seeds": 3, "widths": [64]}, extendable=("widths",))
  with pytest.raises(ValueError, match=r"config\.widths"):
    runs.check_resumable(out, {"seeds": 2, "widths": [128]})
