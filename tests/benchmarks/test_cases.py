"""The suite's cases run end to end at tiny sizes without the reference and write well-formed JSON."""
import json

import numpy as np
import pytest

from benchmarks import activation_speed
from benchmarks import batch_scale
from benchmarks import cnn_kernel_speed
from benchmarks import harness
from benchmarks import kernel_speed
from benchmarks import predict_speed
from benchmarks import registry


def _check_result(result, num_rows):
  assert len(result["rows"]) == num_rows
  for r in result["rows"]:
    assert r["ours"]["median"] > 0 and r["ours"]["min"] <= r["ours"]["median"] <= r["ours"]["max"]
  json.loads(json.dumps(result))  # JSON-serialisable as written


def test_new_cases_are_registered():
  for name in ("cnn_kernel_speed", "batch_scale", "predict_speed", "activation_speed"):
    assert name in registry.CASES


def test_myrtle_spec_pools_32x32_to_one_pixel():
  spec = cnn_kernel_speed.myrtle_spec(5)
  convs = [s for s in spec if s[0] == "Conv"]
  pools = [s for s in spec if s[0] == "AvgPool"]
  assert len(convs) + 1 == 5 and 2 ** len(pools) == 32


def test_cnn_case_tiny_measures_time_and_peak_memory(monkeypatch):
  tiny = [["Conv", dict(out_chan=8, filter_shape=[3, 3], padding="SAME")], ["Relu", {}],
          ["GlobalAvgPool", {}], ["Dense", dict(out_dim=1)]]
  monkeypatch.setattr(cnn_kernel_speed, "cases", lambda full: (("tiny CNN", tiny, 3, 4, 0),))
  result = harness.run_case("cnn_kernel_speed", cnn_kernel_speed.run, reference=False,
                            verbose=False)
  _check_result(result, 1)
  mem = result["details"]["tiny CNN"]["peak_memory"]["ours"]
  assert mem["peak_gb"] >= mem["baseline_gb"] > 0 and mem["module"] == "kernels.stax"
  assert result["rows"][0]["reference"] is None and result["rows"][0]["max_diff"] is None


@pytest.mark.slow
def test_predict_case_tiny(monkeypatch):
  monkeypatch.setattr(predict_speed, "QUICK",
                      dict(n_train=12, n_test=5, dim=4, depth=1, n_times=3))
  result = harness.run_case("predict_speed", predict_speed.run, reference=False, verbose=False)
  _check_result(result, 1)
  assert result["details"]["n_train"] == 12 and len(result["details"]["times_s"]["ours"]) == 3


@pytest.mark.slow
def test_batch_scale_case_tiny(monkeypatch):
  monkeypatch.setitem(batch_scale.OPTIONS, "sizes", [30, 60])
  monkeypatch.setitem(batch_scale.OPTIONS, "batch_size", 30)
  result = harness.run_case("batch_scale", batch_scale.run, reference=False, verbose=False)
  _check_result(result, 2)
  points = result["details"]["points"]
  assert set(points) == {"30", "60"}
  for p in points.values():
    assert p["peak_rss_gb"] > 0 and p["kernel_diag_finite"] and np.isfinite(p["kernel_sample"])


def test_activation_case_tiny_runs_each_activation_with_its_arguments(monkeypatch):
  monkeypatch.setattr(kernel_speed, "N", 24)
  chosen = [a for a in activation_speed.ACTIVATIONS if a[1] in ("Polynomial", "Exp", "Gabor")]
  monkeypatch.setattr(activation_speed, "ACTIVATIONS", chosen)
  result = harness.run_case("activation_speed", activation_speed.run, reference=False,
                            verbose=False)
  _check_result(result, 3)  # without the reference: the row against the Gram product
  for label, name, kwargs, w_std in chosen:
    d = result["details"][label]
    assert d["W_std"] == w_std and d["kwargs"] == kwargs
    assert max(d["ours_vs_float64"].values()) < 1e-4
