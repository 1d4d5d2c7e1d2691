"""Subprocess side of tests/kernels/test_batch.py: kernels.batch on 4 simulated devices, or as
one of two `jax.distributed` processes computing one kernel together.

  python tests/kernels/batch_worker.py devices OUT.json
  python tests/kernels/batch_worker.py distributed OUT.json PROCESS_ID PORT MEMMAP_DIR
"""
import json
import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import numpy as np  # noqa: E402


def network():
  from kernels import stax  # pylint: disable=g-import-not-at-top
  return stax.serial(stax.Dense(32, 1.4, 0.1), stax.Relu(), stax.Dense(32, 1.3, 0.05),
                     stax.Erf(), stax.Dense(1))


def inputs():
  rng = np.random.RandomState(0)
  return rng.randn(21, 6).astype(np.float32), rng.randn(13, 6).astype(np.float32)


def max_diff(a, b):
  return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def devices(out):
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=g-import-not-at-top
  from kernels import batch  # pylint: disable=g-import-not-at-top
  net, (x1, x2) = network(), inputs()
  ref = net.kernel_fn(x1, x2, ("nngp", "ntk"))
  ref_sym = net.kernel_fn(x1, None, ("nngp", "ntk"))
  res = dict(device_count=jax.device_count(), diffs={})
  for bs in (6, 13):  # no multiples of the 4 devices: rounded up to 8 and 16, inputs padded
    got = batch(net.kernel_fn, bs)(x1, x2, ("nngp", "ntk"))
    sym = batch(net.kernel_fn, bs, store_on_device=False)(x1, None, ("nngp", "ntk"))
    res["diffs"][str(bs)] = [max_diff(got.nngp, ref.nngp), max_diff(got.ntk, ref.ntk),
                             max_diff(sym.nngp, ref_sym.nngp), max_diff(sym.ntk, ref_sym.ntk)]
    res.setdefault("symmetric", []).append(bool(np.array_equal(sym.ntk, sym.ntk.T)))
  # A tile's rows placed over the 4-device mesh: kernel_fn's programs follow the sharding.
  mesh = Mesh(np.asarray(jax.devices()), ("batch",))
  xa = jax.device_put(x1[:20], NamedSharding(mesh, PartitionSpec("batch")))
  k = net.kernel_fn(xa, x2, "ntk")
  res["tile_devices"] = len(k.sharding.device_set)
  res["ref_scale"] = float(np.max(np.abs(ref.ntk)))
  return res


def distributed(out, pid, port, folder):
  jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                             process_id=pid, local_device_ids=None)
  from kernels import batch  # pylint: disable=g-import-not-at-top
  net, (x1, x2) = network(), inputs()
  ref = net.kernel_fn(x1, x2, ("nngp", "ntk"))
  ref_sym = net.kernel_fn(x1, None, "ntk")
  disk = batch(net.kernel_fn, 5, memmap_dir=folder)(x1, x2, ("nngp", "ntk"))
  mem = batch(net.kernel_fn, 4, store_on_device=False)(x1, None, "ntk")
  return dict(process_count=jax.process_count(), process_index=jax.process_index(),
              global_devices=jax.device_count(), local_devices=jax.local_device_count(),
              disk=[max_diff(disk.nngp, ref.nngp), max_diff(disk.ntk, ref.ntk)],
              memory=max_diff(mem, ref_sym), ref_scale=float(np.max(np.abs(ref.ntk))))


if __name__ == "__main__":
  mode, out_path = sys.argv[1], sys.argv[2]
  if mode == "devices":
    result = devices(out_path)
  else:
    result = distributed(out_path, int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
  with open(out_path, "w") as f:
    json.dump(result, f)
