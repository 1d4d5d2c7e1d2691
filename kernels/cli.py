"""Command-line programs: a bad flag or input ends the program in one line, before any work.

Every absl program of the project (``kernels.width_check``, ``dmft.run``,
``scaling.fit``, ``scaling.plrf_frontier``; their shape is `kernels.program`)
checks its flags and config fields first and reports a problem as
``program: error: message`` on stderr with exit status 1, no traceback, and
nothing written.
"""
from __future__ import annotations

import sys


def fail(program: str, message) -> None:
  """Prints `program: error: message` as one line on stderr and exits with status 1."""
  print(f"{program}: error: {' '.join(str(message).split())}", file=sys.stderr)
  sys.exit(1)


def flags_parser(program: str):
  """An `absl.app.run` flags parser that reports a bad flag with `fail`, in one line."""
  from absl import flags  # pylint: disable=g-import-not-at-top

  def parse(argv):
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      fail(program, e)
  return parse
