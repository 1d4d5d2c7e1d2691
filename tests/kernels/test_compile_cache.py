"""The programs' compilation cache: where it lives, how it is turned off, that it is read."""
import os
import subprocess
import sys

from kernels import compile_cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_folder_from_the_environment(monkeypatch, tmp_path):
  monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "c"))
  assert compile_cache.default_dir() == str(tmp_path / "c")
  for off in ("off", "0", "", "False"):
    monkeypatch.setenv(compile_cache.ENV, off)
    assert compile_cache.default_dir() is None
  monkeypatch.delenv(compile_cache.ENV)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert compile_cache.default_dir() == os.path.join(str(tmp_path / "xdg"), "widenets", "jax")


# A program that takes well over MIN_COMPILE_SECONDS to compile; prints its result and
# the number of programs this process loaded from the cache.
_CODE = """
import jax, jax.numpy as jnp
from jax import monitoring
from kernels import compile_cache
hits = []
monitoring.register_event_listener(
    lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else 0)
print(compile_cache.enable())
def f(x):
  for i in range(60):
    x = jnp.sin(x * (i + 1.0)) + jnp.cos(x @ x.T)[:, :3]
  return x
print(float(jax.jit(f)(jnp.ones((3, 3))).sum()), len(hits))
"""


def test_a_second_process_loads_instead_of_compiling(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT, **{compile_cache.ENV: str(tmp_path / "c")})
  runs = [subprocess.run([sys.executable, "-c", _CODE], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout.split() for _ in range(2)]
  assert runs[0][0] == str(tmp_path / "c") and any((tmp_path / "c").iterdir())
  assert runs[0][1] == runs[1][1]  # the same value
  assert int(runs[0][2]) == 0 and int(runs[1][2]) >= 1, runs  # compiled once, then loaded
