r"""kernels.batch at MNIST size: depth-5 ReLU NNGP and NTK of n points of dimension 784, float32.

  python -m benchmarks.batch_scale --out=/tmp/batch_scale [--sizes=1000,2000,...,60000]
      [--batch_size=4000] [--keep]

Each n runs in its own process under ``/usr/bin/time -v`` (peak resident memory)
and streams both kernels tile by tile to NumPy memmaps in OUT/n<n>/ (deleted
afterwards unless --keep; 60,000 points are 28.8 GB on disk). In the same process
and the same tiles, the Gram product ``x1 @ x2.T`` written to the same kind of
output gives the baseline of the ratio. Writes OUT/results.json and
OUT/summary.md with time and peak memory against n and the fitted log-log slope
of time (`kernels.slopes.loglog_fit`). Inputs are Gaussian (nothing is
downloaded): the kernel's cost does not depend on the values.
"""
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output folder (never inside the repository's tracked files).")
flags.DEFINE_list("sizes", ["1000", "2000", "4000", "8000", "15000", "30000", "60000"],
                  "Numbers of points.")
flags.DEFINE_integer("batch_size", 4000, "Tile size.")
flags.DEFINE_integer("depth", 5, "Hidden ReLU layers.")
flags.DEFINE_bool("keep", False, "Keep the memmap kernels.")
flags.DEFINE_integer("worker", 0, "Internal: compute one size in this process.")


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
    # Compile the two tile programs (diagonal and off-diagonal tiles) outside the timing.
    t0 = time.perf_counter()
    m = min(batch_size, n)
    jax.block_until_ready(fn(x[:m], None, ("nngp", "ntk")))
    jax.block_until_ready(fn(x[:m], x[n - m:], ("nngp", "ntk")))
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


def _run_one(n, folder):
  cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "benchmarks.batch_scale",
         f"--worker={n}", f"--batch_size={FLAGS.batch_size}", f"--depth={FLAGS.depth}",
         f"--out={folder}"]
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


def main(argv):
  del argv
  if FLAGS.worker:
    res = worker(FLAGS.worker, FLAGS.batch_size, FLAGS.depth, FLAGS.out)
    _atomic_write(os.path.join(FLAGS.out, "worker.json"), json.dumps(res))
    return
  if not FLAGS.out:
    raise app.UsageError("--out is required.")
  from kernels import slopes  # pylint: disable=g-import-not-at-top
  os.makedirs(FLAGS.out, exist_ok=True)
  results_path = os.path.join(FLAGS.out, "results.json")
  results = json.loads(open(results_path).read()) if os.path.exists(results_path) else {}
  sizes = [int(s) for s in FLAGS.sizes]
  for n in sizes:
    if str(n) in results:  # a rerun skips finished sizes
      continue
    folder = os.path.join(FLAGS.out, f"n{n}")
    os.makedirs(folder, exist_ok=True)
    res = _run_one(n, folder)
    if not FLAGS.keep:
      shutil.rmtree(folder)
    results[str(n)] = res
    _atomic_write(results_path, json.dumps(results, indent=1))
    print(f"n={n}: kernels {res['kernel_s']:.1f} s, Gram {res['gram_s']:.1f} s "
          f"(ratio {res['kernel_s'] / res['gram_s']:.2f}), peak RSS {res['peak_rss_gb']:.2f} GB, "
          f"output {res['kernels_gb']:.1f} GB on disk", flush=True)
  ns = sorted(int(n) for n in results)
  lines = ["# kernels.batch: depth-%d ReLU NNGP + NTK, d = 784, float32, tiles of %d, memmap output"
           % (FLAGS.depth, FLAGS.batch_size), "",
           "| n | kernels (s) | Gram, same tiles (s) | ratio | peak RSS (GB) | output (GB) |",
           "| --- | --- | --- | --- | --- | --- |"]
  for n in ns:
    r = results[str(n)]
    lines.append(f"| {n} | {r['kernel_s']:.1f} | {r['gram_s']:.1f} | "
                 f"{r['kernel_s'] / r['gram_s']:.2f} | {r['peak_rss_gb']:.2f} | "
                 f"{r['kernels_gb']:.1f} |")
  big = [n for n in ns if n >= 2 * FLAGS.batch_size] or ns  # several tiles: time ~ tiles
  if len(big) >= 2:
    fit = slopes.loglog_fit(big, [results[str(n)]["kernel_s"] for n in big])
    lines += ["", f"time ~ n^slope for n >= {big[0]}: {fit}"]
  _atomic_write(os.path.join(FLAGS.out, "summary.md"), "\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
