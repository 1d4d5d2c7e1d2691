"""The lm programs on the project's program shape (`kernels.program`): a shipped config file
in lm/configs, --config.field overrides, --out defaulting to runs/<name>, one-line errors."""
from __future__ import annotations

from kernels import program


def main(name: str, default_config: str, out_name: str, check, run, extendable=()) -> None:
  """Runs `run(config, out)` as the absl program `name` after `check(config)` passed."""
  def body(config, out):
    from absl import logging  # pylint: disable=g-import-not-at-top
    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint at INFO
    return run(config, out)
  program.main(program.Program(name=name, default_config=f"lm/configs/{default_config}",
                               out_name=out_name, check=check, run=body,
                               extendable=tuple(extendable)))
