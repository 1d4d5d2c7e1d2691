"""The neural-tangents reference environment: created on demand, used through subprocesses.

neural-tangents 0.6.5 imports only with an older JAX, so it lives in its own
virtual environment (default ``.venv-nt`` in the repository root, or the path in
the environment variable ``WIDENETS_NT_VENV``) and runs in a separate process.
Nothing in ``kernels/`` imports this module; it serves the benchmarks and the
generator of ``tests/fixtures/nt_reference.json``.

Two ways to run code there:

* `run_json(args)`: runs ``benchmarks/nt_reference.py`` once and returns the JSON
  it writes;
* `Worker`: keeps ``nt_reference.py serve`` alive and sends it one JSON command per
  call, so that timings of both libraries can be interleaved in one benchmark run.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
from typing import Any, Optional, Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "benchmarks" / "nt_reference.py"
ENV_VAR = "WIDENETS_NT_VENV"
# Every package of a working environment (``pip freeze`` of one created on Python 3.11,
# 2.7 GB on disk, most of it tensorflow-cpu), so that a new one is the same.
PINS = (
    "neural-tangents==0.6.5", "jax==0.5.3", "jaxlib==0.5.3", "tf2jax==0.3.6",
    "tensorflow-cpu==2.21.0", "tensorflow==2.21.0", "keras==3.15.1", "numpy==2.4.6",
    "scipy==1.17.1", "ml_dtypes==0.6.0", "opt_einsum==3.4.0", "frozendict==2.5.1",
    "dm-tree==0.1.10", "absl-py==2.5.1", "astunparse==1.6.3", "attrs==26.1.0",
    "certifi==2026.10.19.post1", "charset-normalizer==3.5.3", "flatbuffers==25.12.19",
    "gast==0.7.0", "google-pasta==0.2.0", "grpcio==1.85.3", "h5py==3.14.0", "idna==3.20",
    "libclang==18.1.1", "markdown-it-py==4.3.0", "mdurl==0.1.2", "namex==0.1.0",
    "optree==0.20.0", "packaging==26.4", "protobuf==7.36.2", "Pygments==2.21.0",
    "requests==2.34.2", "rich==15.0.0", "six==1.17.0", "termcolor==3.3.0",
    "typing_extensions==4.16.0", "urllib3==2.8.0", "wrapt==2.5.2", "wheel==0.48.0",
)
REPLY_PREFIX = "@@reply "
_CHECK = ("import jax, jaxlib, neural_tangents as nt; "
          "assert jax.__version__ == '0.5.3', jax.__version__; "
          "assert nt.__version__ == '0.6.5', nt.__version__")


def venv_path() -> pathlib.Path:
  """Where the reference environment lives (``$WIDENETS_NT_VENV`` or ``.venv-nt``)."""
  p = os.environ.get(ENV_VAR)
  return pathlib.Path(p).expanduser().resolve() if p else REPO_ROOT / ".venv-nt"


def python_path() -> pathlib.Path:
  return venv_path() / "bin" / "python"


def _env() -> dict:
  """Environment of reference subprocesses: CPU only, quiet, none of our paths."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "XLA_FLAGS")}
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
             PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1")
  return env


def is_ready() -> bool:
  """True when the reference environment imports neural-tangents 0.6.5 on jax 0.5.3."""
  py = python_path()
  if not py.exists():
    return False
  r = subprocess.run([str(py), "-c", _CHECK], env=_env(), capture_output=True, timeout=300)
  return r.returncode == 0


def ensure(verbose: bool = True) -> pathlib.Path:
  """Creates the reference environment if it does not import already; returns its python.

  Idempotent: a working environment is left untouched. Creation needs the package
  registry (a few minutes; 2.7 GB on disk, most of it tensorflow-cpu).
  """
  if is_ready():
    return python_path()
  path = venv_path()
  if verbose:
    print(f"[reference] creating the neural-tangents reference environment at {path} "
          f"({' '.join(PINS)}); this takes a few minutes.", file=sys.stderr, flush=True)
  if not python_path().exists():
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
  pip = [str(python_path()), "-m", "pip", "install"] + ([] if verbose else ["-q"])
  subprocess.run(pip + list(PINS), check=True, env=_env())
  if not is_ready():
    raise RuntimeError(f"The reference environment at {path} was installed but does not import "
                       "neural-tangents 0.6.5 with jax 0.5.3.")
  return python_path()


def run_json(args: Sequence[str], timeout: Optional[float] = 600) -> Any:
  """Runs ``nt_reference.py <args> --out FILE`` in the reference environment; returns the JSON."""
  py = ensure()
  with tempfile.TemporaryDirectory() as d:
    out = pathlib.Path(d) / "out.json"
    r = subprocess.run([str(py), str(SCRIPT), *args, "--out", str(out)], env=_env(),
                       cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or not out.exists():
      raise RuntimeError(f"reference run {list(args)} failed (exit {r.returncode}):\n"
                         f"{r.stderr[-4000:]}")
    return json.loads(out.read_text())


class Worker:
  """A long-lived ``nt_reference.py serve`` process answering one JSON command per call."""

  def __init__(self):
    py = ensure()
    self._proc = subprocess.Popen([str(py), str(SCRIPT), "serve"], env=_env(),
                                  cwd=str(REPO_ROOT), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                  text=True, bufsize=1)

  def call(self, command: str, **kwargs) -> Any:
    """Sends ``{"command": command, **kwargs}``; returns the reply or raises its error."""
    if self._proc.poll() is not None:
      raise RuntimeError(f"the reference worker exited with code {self._proc.returncode}.")
    self._proc.stdin.write(json.dumps(dict(command=command, **kwargs)) + "\n")
    self._proc.stdin.flush()
    for line in self._proc.stdout:
      if line.startswith(REPLY_PREFIX):
        reply = json.loads(line[len(REPLY_PREFIX):])
        if "error" in reply:
          raise RuntimeError(f"reference command {command!r} failed:\n{reply['error']}")
        return reply["result"]
    raise RuntimeError(f"the reference worker exited during {command!r} "
                       f"(code {self._proc.wait()}).")

  def close(self):
    if self._proc.poll() is None:
      try:
        self._proc.stdin.close()
        self._proc.wait(timeout=30)
      except (OSError, subprocess.TimeoutExpired):
        self._proc.kill()
        self._proc.wait()

  def __enter__(self) -> "Worker":
    return self

  def __exit__(self, *exc):
    self.close()


FIXTURE = REPO_ROOT / "tests" / "fixtures" / "nt_reference.json"


def write_fixture(path: pathlib.Path = FIXTURE) -> pathlib.Path:
  """Regenerates the float64 neural-tangents fixture used by tests/kernels/test_nt_reference.py."""
  data = run_json(["fixture"])
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(data, separators=(",", ":")))
  os.replace(tmp, path)
  return path


def main(argv: Sequence[str]) -> None:
  usage = "usage: python -m benchmarks.reference_env {create|versions|fixture}"
  if len(argv) != 1 or argv[0] not in ("create", "versions", "fixture"):
    raise SystemExit(usage)
  if argv[0] == "create":
    print(ensure())
  elif argv[0] == "versions":
    print(json.dumps(run_json(["versions"]), indent=1))
  else:
    path = write_fixture()
    print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
  main(sys.argv[1:])
