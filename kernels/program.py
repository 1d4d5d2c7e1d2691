"""One shape for every experiment program of the project.

Each program (``kernels.width_check``, ``dmft.run``, ``scaling.fit``,
``scaling.plrf_frontier``) is an absl ``main`` with an ml_collections config
file, as in the Flax examples:

  python -m PROGRAM [--config=path/to/config.py] [--config.field=value ...] [--out=DIR]

* ``--config`` defaults to the config file shipped with the program; any field
  can be overridden on the command line (tuples as ``--config.widths=64,256``).
* ``--out`` defaults to ``runs/<name>`` for the default config file and
  ``runs/<name>_<config file stem>`` for another one.
* Before any work or write, the program checks every config field and the
  output folder; a bad one ends it with ``PROGRAM: error: message`` naming the
  field, exit status 1 (`kernels.cli.fail`). A folder holding a run of a
  different config is refused the same way (fields the program lists as
  extendable, such as the widths, may change: new entries are computed, old
  ones are kept; a config whose field ``overwrite`` is True starts afresh).
* Compiled XLA programs are kept on disk (`kernels.compile_cache`), so a later
  process of the same shapes, whatever its hyperparameters, does not compile
  them again; ``WIDENETS_COMPILE_CACHE`` names the folder or, ``off``, turns it off.
* The run writes one folder through `kernels.runs.RunDir` (config.json,
  metrics.jsonl, PNG figures, summary.md, each written atomically), shows its
  progress with tqdm, and a rerun skips the work already recorded.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import numbers
import os
import sys
from typing import Any, Callable, Optional, Sequence

from kernels import cli, compile_cache, runs

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class Program:
  """An experiment program.

  name: the module (``kernels.width_check``), used in error lines.
  default_config: the shipped config file, relative to the repository root.
  out_name: the default folder is ``runs/<out_name>``.
  check: ``check(config)`` raises ValueError naming the first bad ``config.field``.
  run: ``run(config, out)`` does the work (after the checks passed).
  extendable: config fields a rerun into the same folder may change.
  """
  name: str
  default_config: str
  out_name: str
  check: Callable[[Any], None]
  run: Callable[[Any, str], Any]
  extendable: Sequence[str] = ()

  @property
  def default_config_path(self) -> str:
    return os.path.join(_ROOT, self.default_config)

  def default_out(self, config_path: Optional[str] = None) -> str:
    """``runs/<out_name>``, or ``runs/<out_name>_<stem>`` for another config file."""
    if config_path is None:
      return os.path.join("runs", self.out_name)
    path = config_path.split(":")[0]
    if os.path.abspath(path) == os.path.abspath(self.default_config_path):
      return os.path.join("runs", self.out_name)
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join("runs", f"{self.out_name}_{stem}")

  def prepare(self, config, out: str) -> None:
    """The checks made before any work: config fields, output folder, resumability.

    Raises ValueError naming the config field or ``--out``.
    """
    self.check(config)
    if os.path.exists(out) and not os.path.isdir(out):
      raise ValueError(f"--out must be a folder, but {out!r} is a file.")
    if not (hasattr(config, "get") and config.get("overwrite", False) is True):
      runs.check_resumable(out, config_dict(config), self.extendable)


def config_dict(config) -> dict:
  """A config as plain JSON values (tuples as lists), as config.json holds it."""
  return runs.jsonable(config.to_dict() if hasattr(config, "to_dict") else dict(config))


def load_config_file(path: str):
  """Calls ``get_config()`` (or ``get_config(arg)`` for ``path:arg``) of a config file."""
  path, _, arg = path.partition(":")
  spec = importlib.util.spec_from_file_location("_program_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def _argv_config(argv: Sequence[str]):
  """(config path or None, [(field path, argument)]) found in ``argv``."""
  path, overrides = None, []
  for i, a in enumerate(argv[1:], start=1):
    if a == "--":
      break
    if a.startswith("--config="):
      path = a.split("=", 1)[1]
    elif a == "--config" and i + 1 < len(argv):
      path = argv[i + 1]
    elif a.startswith("--config."):
      overrides.append((a[len("--config."):].split("=", 1)[0], a))
  return path, overrides


def check_argv(program: Program, argv: Sequence[str]) -> None:
  """Fails in one line on a missing config file or an override of a field it lacks.

  (ml_collections would otherwise stop with a traceback while parsing.)
  """
  path, overrides = _argv_config(argv)
  path = program.default_config_path if path is None else path
  if not os.path.isfile(path.split(":")[0]):
    folder = os.path.dirname(program.default_config)
    names = ", ".join(sorted(os.path.join(folder, n) for n in os.listdir(
        os.path.dirname(program.default_config_path)) if n.endswith(".py")
        and not n.startswith("_")))
    cli.fail(program.name, f"--config file {path!r} not found; available: {names}")
  if not overrides:
    return
  try:
    config = load_config_file(path)
  except Exception as e:  # pylint: disable=broad-except
    cli.fail(program.name, f"--config file {path!r} does not load: {type(e).__name__}: {e}")
  for field, arg in overrides:
    node = config
    for part in field.split("."):
      if not hasattr(node, "keys") or part not in node.keys():
        known = ", ".join(sorted(node.keys())) if hasattr(node, "keys") else "none"
        cli.fail(program.name, f"{arg.split('=')[0]}: config has no field "
                 f"{part!r} (fields: {known}).")
      node = node[part]
    if isinstance(node, list):
      cli.fail(program.name, f"{arg.split('=')[0]}: config field {field!r} is a list; "
               "the config file must give it as a tuple to override it.")


def main(program: Program, argv: Optional[Sequence[str]] = None) -> None:
  """Defines ``--config`` and ``--out`` and runs ``program`` as an absl program."""
  from absl import app, flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  argv = list(sys.argv if argv is None else argv)
  check_argv(program, argv)
  config_flags.DEFINE_config_file(
      "config", program.default_config_path,
      f"ml_collections config file (default {program.default_config}); fields are "
      "overridden with --config.field=value.", lock_config=True)
  flags.DEFINE_string("out", None, f"Output folder (default runs/{program.out_name} for "
                      f"the default config, runs/{program.out_name}_<config name> for "
                      "another).")

  def _main(args):
    if len(args) > 1:
      cli.fail(program.name, f"unexpected arguments {args[1:]}")
    fl = flags.FLAGS
    config = fl.config
    out = fl.out or program.default_out(config_flags.get_config_filename(fl["config"]))
    try:
      program.prepare(config, out)
    except ValueError as e:
      cli.fail(program.name, e)
    compile_cache.enable()  # the next process with the same shapes skips XLA compilation
    program.run(config, out)

  app.run(_main, argv=argv, flags_parser=cli.flags_parser(program.name))


# Checks of config fields: each raises ValueError naming ``config.<field>``.

def _get(config, field: str):
  node = config
  for part in field.split("."):
    if part not in node:
      raise ValueError(f"config.{field} is missing.")
    node = node[part]
  return node


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool)


def int_field(config, field: str, minimum: Optional[int] = None) -> int:
  """``config.field`` as an int >= ``minimum``."""
  v = _get(config, field)
  if not _is_int(v) or (minimum is not None and v < minimum):
    least = "" if minimum is None else f" >= {minimum}"
    raise ValueError(f"config.{field} must be an integer{least}, got {v!r}.")
  return int(v)


def number_field(config, field: str, positive: bool = False, minimum: Optional[float] = None,
                 maximum: Optional[float] = None) -> float:
  """``config.field`` as a finite float, optionally positive or within bounds."""
  v = _get(config, field)
  ok = _is_real(v) and math.isfinite(v)
  ok = ok and (not positive or v > 0) and (minimum is None or v >= minimum) and (
      maximum is None or v <= maximum)
  if not ok:
    what = "a positive number" if positive else "a finite number"
    if minimum is not None:
      what += f" >= {minimum:g}"
    if maximum is not None:
      what += f" <= {maximum:g}"
    raise ValueError(f"config.{field} must be {what}, got {v!r}.")
  return float(v)


def ints_field(config, field: str, minimum: int = 1, distinct: bool = True,
               allow_empty: bool = False) -> list:
  """``config.field`` as a list of integers >= ``minimum`` (distinct by default)."""
  v = _get(config, field)
  vals = list(v) if isinstance(v, (list, tuple)) else [v]
  bad = (not vals and not allow_empty) or any(not _is_int(w) or w < minimum for w in vals)
  if bad or (distinct and len(set(vals)) != len(vals)):
    raise ValueError(f"config.{field} must be {'distinct ' if distinct else ''}integers "
                     f">= {minimum}, got {v!r}.")
  return [int(w) for w in vals]


def numbers_field(config, field: str, positive: bool = False, allow_empty: bool = True) -> list:
  """``config.field`` as a list of finite (optionally positive) numbers."""
  v = _get(config, field)
  vals = list(v) if isinstance(v, (list, tuple)) else [v]
  if (not vals and not allow_empty) or any(
      not _is_real(g) or not math.isfinite(g) or (positive and g <= 0) for g in vals):
    what = "positive numbers" if positive else "finite numbers"
    raise ValueError(f"config.{field} must be {what}, got {v!r}.")
  return [float(g) for g in vals]


def names_field(config, field: str, choices: Optional[Sequence[str]] = None) -> list:
  """``config.field`` as a non-empty list of names; ``"a,b"`` on the command line gives a, b."""
  v = _get(config, field)
  vals = [v] if isinstance(v, str) else list(v) if isinstance(v, (list, tuple)) else None
  names = None if vals is None else [
      n.strip() for x in vals if isinstance(x, str) for n in x.split(",") if n.strip()]
  if not names or len(names) != sum(len(x.split(",")) if isinstance(x, str) else 1
                                    for x in vals):
    raise ValueError(f"config.{field} must be a tuple of names, got {v!r}.")
  if choices is not None:
    for n in names:
      if n not in tuple(choices):
        raise ValueError(f"config.{field}: {n!r} is not one of {tuple(choices)}.")
  return names


def choice_field(config, field: str, choices: Sequence[str]) -> str:
  """``config.field`` as one of ``choices``."""
  v = _get(config, field)
  if v not in tuple(choices):
    raise ValueError(f"config.{field} must be one of {tuple(choices)}, got {v!r}.")
  return v


def bool_field(config, field: str) -> bool:
  v = _get(config, field)
  if not isinstance(v, bool):
    raise ValueError(f"config.{field} must be True or False, got {v!r}.")
  return v
