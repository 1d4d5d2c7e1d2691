r"""kernels.batch at MNIST size: depth-5 ReLU NNGP and NTK of n points of dimension 784, float32.

  python -m benchmarks.batch_scale [--suite=quick|full] [--out=DIR]
      [--sizes=1000,2000,...,60000] [--batch_size=4000] [--keep]

Each n runs in its own process under ``/usr/bin/time -v`` (peak resident memory)
and streams both kernels tile by tile to NumPy memmaps in a scratch folder
(deleted afterwards unless --keep, then kept in OUT/batch_scale/n<n>/; 60,000
points are 28.8 GB on disk). In the same process and the same tiles, the Gram
product ``x1 @ x2.T`` written to the same kind of output gives the baseline of
the ratio. The quick suite runs n = 500, 1,000, 2,000 in tiles of 500; the full
suite n = 1,000 to 30,000 in tiles of 4,000 (30,000 points: 7.2 GB of kernels
on disk, about 2.7 GB peak resident memory, a few minutes on 2 cores). One row
per n (single timing, time and peak memory); the details hold the fitted log-log
slope of time (`kernels.slopes.loglog_fit`). Inputs are Gaussian (nothing is
downloaded): the kernel's cost does not depend on the values.
"""
import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time

from benchmarks import harness

TITLE = "kernels.batch: depth-5 ReLU NNGP+NTK time and peak memory against n, vs a Gram product"
QUICK = dict(sizes=(500, 1000, 2000), batch_size=500)
FULL = dict(sizes=(1000, 2000, 4000, 8000, 15000, 30000), batch_size=4000)
DEPTH = 5
# Set from the command line (--sizes, --batch_size, --keep); None: the suite's.
OPTIONS = dict(sizes=None, batch_size=None, keep=False)


def _atomic_write(path, text):
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def worker(n, batch_size, depth, folder):
  """One size: the network kernels, then the Gram product, in the same tiles, to memmaps."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kernels import batch, stax  # pylint: disable=g-import-not-at-top
  x = np.random.default_rng(0).normal(size=(n, 784)).astype(np.float32)
  net = stax.mlp([512] * depth, stax.Relu(), 1, W_std=2 ** 0.5, b_std=0.05)
  pair = collections.namedtuple("Kernel", ("nngp", "ntk"))

  @jax.jit
  def gram_pair(a, b):
    g = a @ b.T / a.shape[1]
    return g, g

  def gram_fn(a, b=None, get=None):
    return pair(*gram_pair(a, a if b is None else b))

  out = {}
  for name, fn in (("kernel", net.kernel_fn), ("gram", gram_fn)):
    # Compile the two tile programs (diagonal and off-diagonal tiles) outside the timing,
    # through `batch` itself, so that the tiles' placement on the devices is the same.
    t0 = time.perf_counter()
    m = min(batch_size, n)
    batch(fn, batch_size, store_on_device=False)(x[:min(n, 2 * m)], None, ("nngp", "ntk"))
    out[f"{name}_warmup_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = batch(fn, batch_size, memmap_dir=os.path.join(folder, name))(x, None, ("nngp", "ntk"))
    out[f"{name}_s"] = time.perf_counter() - t0
    # Spot checks with positioned reads: touching the memmap would map file pages (and
    # their read-ahead) into this process and count them in its resident memory.
    path = os.path.join(folder, name, "ntk.npy")
    fd, off = os.open(path, os.O_RDONLY), k.ntk.offset
    read = lambda i, j: np.frombuffer(os.pread(fd, 4, off + (i * n + j) * 4), np.float32)[0]
    idx = np.linspace(0, n - 1, 64).astype(int)
    out[f"{name}_diag_finite"] = bool(all(np.isfinite(read(i, i)) for i in idx))
    out[f"{name}_sample"] = float(read(n // 2, n // 3))
    os.close(fd)
    del k
  return out


def _run_one(n, batch_size, depth, folder):
  cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "benchmarks.batch_scale",
         f"--worker={n}", f"--batch_size={batch_size}", f"--depth={depth}", f"--out={folder}"]
  r = subprocess.run(cmd, capture_output=True, text=True)
  if r.returncode != 0:
    raise RuntimeError(f"n={n} failed:\n{r.stderr[-3000:]}")
  res = json.loads(open(os.path.join(folder, "worker.json")).read())
  rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
  wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", r.stderr)
  parts = [float(p) for p in wall.group(1).split(":")]
  res["peak_rss_gb"] = int(rss.group(1)) / 2 ** 20
  res["process_wall_s"] = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
  res["kernels_gb"] = 2 * n * n * 4 / 1e9
  return res


def run(ctx) -> dict:
  from kernels import slopes  # pylint: disable=g-import-not-at-top
  suite = FULL if ctx.full else QUICK
  sizes = OPTIONS["sizes"] or suite["sizes"]
  batch_size = OPTIONS["batch_size"] or suite["batch_size"]
  results, rows = {}, []
  for n in sizes:
    folder = str(ctx.tmp / f"n{n}")
    os.makedirs(folder, exist_ok=True)
    res = _run_one(n, batch_size, DEPTH, folder)
    if OPTIONS["keep"]:
      shutil.copytree(folder, os.path.join(OPTIONS["keep"], f"n{n}"), dirs_exist_ok=True)
    shutil.rmtree(folder)
    results[n] = res
    ctx.log(f"n={n}: kernels {res['kernel_s']:.1f} s, Gram {res['gram_s']:.1f} s "
            f"(ratio {res['kernel_s'] / res['gram_s']:.2f}), peak RSS {res['peak_rss_gb']:.2f} GB, "
            f"output {res['kernels_gb']:.2f} GB on disk")
    rows.append(harness.row(
        f"n={n}, tiles of {batch_size}: time, peak RSS {res['peak_rss_gb']:.2f} GB",
        harness.stats([res["kernel_s"]]), harness.stats([res["gram_s"]]),
        reference_name="Gram x1 x2^T, same tiles and memmap output",
        first_call=dict(ours=res["kernel_warmup_s"], reference=res["gram_warmup_s"]),
        target=1 / 3, target_text="ours <= 3x Gram",
        note=f"ratio = Gram / ours; {res['kernels_gb']:.2f} GB of kernels on disk; "
             f"diagonal finite: {res['kernel_diag_finite']}"))
  details = dict(batch_size=batch_size, depth=DEPTH, points={str(n): r for n, r in results.items()})
  big = [n for n in sizes if n >= 2 * batch_size] or list(sizes)  # several tiles: time ~ tiles
  if len(big) >= 2:
    fit = slopes.loglog_fit(big, [results[n]["kernel_s"] for n in big])
    details["time_slope"] = dict(sizes=big, slope=fit.slope, interval=[fit.low, fit.high])
    rows[-1]["note"] += f"; time ~ n^{fit.slope:.2f} for n >= {big[0]}"
  return dict(rows=rows, details=details)


def main(argv=None):
  p = argparse.ArgumentParser(add_help=False)
  p.add_argument("--worker", type=int, default=0)
  p.add_argument("--sizes", default=None)
  p.add_argument("--batch_size", type=int, default=None)
  p.add_argument("--depth", type=int, default=DEPTH)
  p.add_argument("--keep", action="store_true")
  a, rest = p.parse_known_args(argv)
  if a.worker:  # internal: one size in this process
    out = rest[rest.index("--out") + 1] if "--out" in rest else next(
        r.split("=", 1)[1] for r in rest if r.startswith("--out="))
    res = worker(a.worker, a.batch_size, a.depth, out)
    _atomic_write(os.path.join(out, "worker.json"), json.dumps(res))
    return
  OPTIONS.update(sizes=a.sizes and [int(s) for s in a.sizes.split(",")],
                 batch_size=a.batch_size)
  if a.keep:
    out = next((r.split("=", 1)[1] for r in rest if r.startswith("--out=")), None)
    OPTIONS["keep"] = os.path.join(out or harness.default_out(), "batch_scale")
  harness.case_main(run, rest)


if __name__ == "__main__":
  main()
