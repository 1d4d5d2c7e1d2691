"""JAX's persistent compilation cache for the experiment programs.

A researcher runs many configurations, each in a fresh process, and most of a
fresh process's first solve is XLA compilation (the two-layer DMFT: about 1 s of
a 1.25 s first call). Programs with the same shapes compile to the same
executables, whatever their hyperparameters, so `kernels.program.main` keeps the
compiled programs on disk and the next process loads them instead (the same
first call: 0.55-0.86 s; docs/benchmarks.md).

The folder is ``$WIDENETS_COMPILE_CACHE``, else ``$XDG_CACHE_HOME/widenets/jax``
(``~/.cache/widenets/jax``); ``WIDENETS_COMPILE_CACHE=off`` turns it off, and a
folder set through JAX's own ``JAX_COMPILATION_CACHE_DIR`` is left as it is.
Library calls never write it: only programs, and callers of `enable`.
"""
from __future__ import annotations

import os
from typing import Optional

import jax

ENV = "WIDENETS_COMPILE_CACHE"
OFF = ("", "0", "off", "false", "no")
# Programs that compile faster than this are not worth a file (JAX's default is 1 s,
# which leaves out most of the DMFT's programs).
MIN_COMPILE_SECONDS = 0.1


def default_dir() -> Optional[str]:
  """The folder the programs use, or None when ``$WIDENETS_COMPILE_CACHE`` turns it off."""
  value = os.environ.get(ENV)
  if value is not None:
    return None if value.strip().lower() in OFF else os.path.expanduser(value)
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "widenets", "jax")


def enable(path: Optional[str] = None) -> Optional[str]:
  """Keeps compiled XLA programs in ``path`` (default `default_dir`); returns the folder.

  Returns None, changing nothing, when the cache is turned off or the folder cannot be
  created; a folder already configured in JAX (``JAX_COMPILATION_CACHE_DIR``) is kept.
  """
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  path = path or default_dir()
  if not path:
    return None
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
  return path
