"""The kernel suite also passes interpreted (NUMBA_DISABLE_JIT=1): the kernels are plain Python+NumPy
that numba compiles, not numba-only code. Runs the suite in a subprocess (about 3-4 minutes here)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_kernel_suite_passes_with_jit_disabled():
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        "-W", "ignore::RuntimeWarning", "tests/kernels"],
                       cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout
