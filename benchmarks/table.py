"""The markdown table of a suite run (``benchmarks/RESULTS.md`` when asked) and its figure."""
from __future__ import annotations

from typing import Sequence

from benchmarks import harness
from kernels import runs as runs_lib


def _load(results: Sequence[dict]) -> str:
  loads = [r["machine"].get("load_average_at_start") for r in results]
  loads = [l[0] for l in loads if l]
  return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "unknown"


def markdown(results: Sequence[dict], suite: str, failed: dict) -> str:
  """One table row per measurement of every case, with the machine and versions above it."""
  if not results:
    return "# Benchmark results\n\nNo case finished.\n"
  first = results[0]
  m, dev, ver = first["machine"], first["device"], first["versions"]["main"]
  ref = next((r["versions"]["reference"] for r in results if "reference" in r["versions"]), None)
  lines = [
      "# Benchmark results", "",
      f"Written by `python -m benchmarks.run_all --suite={suite} --write_table` on "
      f"{m['date'][:16].replace('T', ' ')} UTC.", "",
      f"* Machine: {m['cpu_count']} CPU cores ({m['cpu_model']}), {m['platform']}; load "
      f"average {_load(results)} at the start of the cases (the machine is shared, so "
      "absolute times are noisy; the ratios come from interleaved repeats).",
      f"* Device: {dev['backend']} ({dev['count']} x {dev['kind']}).",
      f"* Ours: jax {ver['jax']}, jaxlib {ver['jaxlib']}, numpy {ver['numpy']}, "
      f"scipy {ver['scipy']}.",
  ]
  if ref:
    lines.append(f"* Reference: neural-tangents {ref['neural_tangents']} on jax {ref['jax']}, "
                 f"jaxlib {ref['jaxlib']}, numpy {ref['numpy']} (its own process, "
                 "`benchmarks/reference_env.py`).")
  lines += [
      "", "Times are medians after a warm-up call, with (min-max) over the repeats; "
      "ratio = reference / ours (above 1: ours is faster); first call = compilation "
      "included; max diff = largest |difference| / largest |value| between the two "
      "results.", "",
      "| case | measurement | ours | reference | ratio | first call (ours / ref) | "
      "max diff | target | met |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for res in results:
    for r in res["rows"]:
      fc = r["first_call"]
      first = " / ".join(f"{fc[k]:.3g} s" if fc.get(k) is not None else "-"
                         for k in ("ours", "reference")) if fc else ""
      ref_cell = (f"{r['reference_name']}: {harness.fmt_s(r['reference'])}"
                  if r["reference"] else "")
      met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
      what = r["what"] + (f" ({r['note']})" if r["note"] else "")
      ratio = "" if r["ratio"] is None else f"{r['ratio']:.3g}x"
      diff = "" if r["max_diff"] is None else f"{r['max_diff']:.2g}"
      lines.append(f"| {res['case']} | {what} | {harness.fmt_s(r['ours'])} | {ref_cell} | "
                   f"{ratio} | {first} | {diff} | {r['target_text']} | {met} |")
  for name, why in failed.items():
    lines.append(f"| {name} | did not finish: {why} | | | | | | | |")
  lines += ["", "What each case measures: [docs/benchmarks.md](../docs/benchmarks.md).", ""]
  return "\n".join(lines)


def figure(results: Sequence[dict], path) -> None:
  """Ratio reference / ours of every row that has one, on a log axis, with its target."""
  from kernels import runs  # pylint: disable=g-import-not-at-top
  items = [(f"{res['case']}: {r['what']}", r["ratio"], r["target"])
           for res in results for r in res["rows"] if r["ratio"] is not None]
  if not items:
    return
  fig, ax = runs_lib.figure(figsize=(8, 0.4 * len(items) + 1.2))
  ys = range(len(items))
  ax.barh(list(ys), [v for _, v, _ in items], color="tab:blue", label="reference / ours")
  for y, (_, _, t) in zip(ys, items):
    if t is not None:
      ax.plot([t, t], [y - 0.4, y + 0.4], "k-", lw=2)
  ax.plot([], [], "k-", lw=2, label="target")
  ax.axvline(1.0, color="grey", lw=0.8, ls="--")
  ax.set_yticks(list(ys), [n for n, _, _ in items], fontsize=7)
  ax.invert_yaxis()
  ax.set_xscale("log")
  ax.set_xlabel("speed ratio, reference time / our time (log scale; > 1: ours faster)")
  ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
  runs.save_figure(fig, path)
