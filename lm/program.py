"""What every lm program shares: an ml_collections --config file, --out, one-line errors."""
from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging

from kernels import cli

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def run(name: str, default_config: str, default_out: str, body) -> None:
  """Defines --config (default lm/configs/<default_config>) and --out, then runs
  ``body(config, out)`` with ValueError turned into ``name: error: ...`` on stderr."""
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  for a in sys.argv[1:]:
    if a.startswith("--config="):
      path = a.split("=", 1)[1].split(":")[0]
      if not os.path.isfile(path):
        cli.fail(name, f"--config file {path!r} not found")
  config_flags.DEFINE_config_file(
      "config", os.path.join(CONFIG_DIR, default_config),
      f"ml_collections config (default lm/configs/{default_config}); fields overridable "
      "with --config.field=value.")
  flags.DEFINE_string("out", default_out, "Output folder (run folder).")

  def main(argv):
    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
      cli.fail(name, f"unexpected arguments {argv[1:]}")
    out = flags.FLAGS.out
    if os.path.exists(out) and not os.path.isdir(out):
      cli.fail(name, f"--out must be a folder, but {out!r} is a file")
    try:
      body(flags.FLAGS.config, out)
    except ValueError as e:
      cli.fail(name, e)
  app.run(main, flags_parser=cli.flags_parser(name))
