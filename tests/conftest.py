"""Test configuration: two host CPU devices so that sharded code paths run."""
import os

# Two simulated devices share two loaded cores with the other test worker: a collective may
# wait minutes for its second participant, which XLA otherwise aborts after 40 s.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2 "
                      "--xla_cpu_collective_timeout_seconds=900 "
                      "--xla_cpu_collective_call_terminate_timeout_seconds=900")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Programs run by the tests keep no compiled programs on disk (kernels.compile_cache);
# the test of the cache names its own folder.
os.environ.setdefault("WIDENETS_COMPILE_CACHE", "off")

import gc  # noqa: E402
import pathlib  # noqa: E402

import pytest  # noqa: E402

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
  """Path of ../shared/data; skips the test when the folder is absent."""
  if not SHARED_DATA.is_dir():
    pytest.skip("../shared/data is not present")
  return SHARED_DATA


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
  """Drops every compiled program when a test module ends.

  A test worker lives for hundreds of tests; each program XLA compiles holds a few memory
  mappings for its machine code while a jit cache refers to it. Kept for the whole run, they
  passed the kernel's limit on mappings per process (vm.max_map_count, 65530), and the worker
  failed with 'Cannot allocate memory' or crashed.
  """
  yield
  import jax  # pylint: disable=g-import-not-at-top
  jax.clear_caches()
  gc.collect()

