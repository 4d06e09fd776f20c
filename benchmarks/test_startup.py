"""Kernel start-up: a fresh process with a warm numba cache, from `import kernels` to its first sampled token."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import time
t_start = time.perf_counter()
import numpy as np
t0 = time.perf_counter()  # kernel start-up counts from here: numba's import, cache load, first call
import kernels
raw = np.random.default_rng(0).standard_normal(49152).astype(np.float32)
ws = kernels.Workspace(raw.size)
counts = np.zeros(raw.size, np.int32); occurred = np.zeros(64, np.int32)
tok = kernels.sample_step(raw, ws.work, ws.weights, ws.ids_scratch, ws.blocks, np.array([1], np.int32),
                          np.array([0.5], np.float32), counts, occurred, 0, 0.5, 0.3, 0.8, 0.95,
                          kernels.seed_to_u64(1), 0, 0, 5, np.zeros(5, np.int32), np.zeros(5, np.float64))
t1 = time.perf_counter()
print(t0 - t_start, t1 - t0)
"""


def _run() -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True)
    numpy_s, kernels_s = map(float, out.stdout.split()[-2:])
    return numpy_s, kernels_s


def test_first_token_from_import_with_warm_cache(capsys):
    _run()  # fills the cache if it is cold
    numpy_s, kernels_s = min(_run() for _ in range(5))
    with capsys.disabled():
        print(f"\nkernel start-up, `import kernels` (numba included) to first sampled token, warm cache: "
              f"{kernels_s * 1e3:.0f} ms (importing numpy before it: {numpy_s * 1e3:.0f} ms)")
    assert kernels_s < 1.0
