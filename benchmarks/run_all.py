r"""The benchmark suite: every case of `benchmarks.registry.CASES`, side by side with the references.

  python -m benchmarks.run_all                      # quick suite (make bench), minutes
  python -m benchmarks.run_all --suite=full         # larger sizes and more repeats
  python -m benchmarks.run_all --only=kernel_speed,dmft_speed --no_reference
  python -m benchmarks.run_all --write_table        # also rewrite benchmarks/RESULTS.md

Each case runs in its own process (a failure does not stop the others) and, when
it compares with neural-tangents, keeps the reference process alive beside it so
that the two are timed in alternation. The run folder (``--out``, default
runs/bench_<suite>_<UTC time>) gets config.json, metrics.jsonl (one record per
case), <case>.json, results.json (all cases), RESULTS.md (the table), ratios.png
and summary.md; tracked files change only with ``--write_table``. A rerun into the
same folder with ``--only`` replaces those cases and keeps the others' results.
"""
import json
import os
import pathlib
import subprocess
import sys
import time

from absl import app
from absl import flags
import tqdm

from benchmarks import harness
from benchmarks import registry
from benchmarks import table
from kernels import cli
from kernels import runs

HERE = pathlib.Path(__file__).resolve().parent
TABLE = HERE / "RESULTS.md"
PROGRAM = "benchmarks.run_all"
FLAGS = flags.FLAGS


def define_flags():
  flags.DEFINE_enum("suite", "quick", harness.SUITES, "quick (minutes) or full (longer).")
  flags.DEFINE_string("out", None, "Run folder (default runs/bench_<suite>_<UTC time>).")
  flags.DEFINE_list("only", [], f"Cases to run (default all): {', '.join(registry.CASES)}.")
  flags.DEFINE_bool("no_reference", False, "Skip neural-tangents (no reference environment).")
  flags.DEFINE_bool("write_table", False, f"Also write the table to {TABLE.relative_to(HERE.parent)}.")


def present_cases() -> list:
  return [n for n in registry.CASES if (HERE / f"{n}.py").exists()]


def select(only) -> list:
  """The registered cases to run, in registry order; ValueError for unknown names."""
  unknown = sorted(set(only) - set(registry.CASES))
  if unknown:
    raise ValueError(f"--only names unknown cases {unknown}; registered: {list(registry.CASES)}")
  missing = [n for n in (only or registry.CASES) if n not in present_cases()]
  if only and missing:
    raise ValueError(f"--only names cases whose module is missing: {missing}")
  return [n for n in present_cases() if not only or n in only]


def run(suite: str, out: str, only=(), reference: bool = True, write_table: bool = False):
  names = select(list(only))
  rd = runs.RunDir(out)
  rd.write_json("config.json", dict(suite=suite, cases=names, reference=reference,
                                    write_table=write_table))
  failed = {n: "module not present" for n in registry.CASES
            if n not in present_cases() and not only}
  bar = tqdm.tqdm(names, desc=PROGRAM, unit="case")
  for name in bar:
    bar.set_postfix_str(name)
    cmd = [sys.executable, "-m", f"benchmarks.{name}", f"--suite={suite}", f"--out={out}"]
    if not reference:
      cmd.append("--no_reference")
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=str(HERE.parent))
    seconds = time.perf_counter() - t0
    if rc != 0 or not (rd.path / f"{name}.json").exists():
      failed[name] = f"exit status {rc}"
    rd.append(dict(key=name, exit_status=rc, seconds=round(seconds, 1)))
  # The table holds every registered case with results in this folder: a rerun with
  # --only replaces those cases and keeps the others.
  kept = [n for n in registry.CASES if n not in failed and (rd.path / f"{n}.json").exists()]
  results = [json.loads((rd.path / f"{n}.json").read_text()) for n in kept]
  rd.write_json("results.json", dict(suite=suite, cases=results, failed=failed))
  text = table.markdown(results, suite, failed)
  rd.write_text("RESULTS.md", text)
  table.figure(results, rd.path / "ratios.png")
  rows = [harness.format_row(r["case"], row) for r in results for row in r["rows"]]
  rd.write_text("summary.md", "# Benchmark suite\n\n" + "\n".join(f"* {r}" for r in rows) +
                "".join(f"\n* {n}: did not finish ({why})" for n, why in failed.items()) +
                "\n\n![ratios](ratios.png)\n")
  if write_table:
    runs.write_text(TABLE, text)
  print("\n".join(rows))
  for n, why in failed.items():
    print(f"{n}: did not finish ({why})")
  return results, failed


def main(argv):
  if len(argv) > 1:
    cli.fail(PROGRAM, f"unexpected arguments {argv[1:]}")
  out = FLAGS.out or os.path.join(
      "runs", f"bench_{FLAGS.suite}_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}")
  try:
    select(FLAGS.only)
    if os.path.exists(out) and not os.path.isdir(out):
      raise ValueError(f"--out must be a folder, but {out!r} is a file")
  except ValueError as e:
    cli.fail(PROGRAM, e)
  _, failed = run(FLAGS.suite, out, FLAGS.only, not FLAGS.no_reference, FLAGS.write_table)
  print(f"wrote {out}" + (f" and {TABLE}" if FLAGS.write_table else ""))
  if failed:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli.flags_parser(PROGRAM))
