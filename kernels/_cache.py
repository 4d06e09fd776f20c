"""Numba's on-disk cache, keyed by the source of every kernel file.

Numba invalidates a cached function only when its own file changes, not when a kernel it calls (and
inlined) changes in another file; a stale cache then silently runs old code. Keying the cache folder by a
hash of all kernel sources makes any edit start a fresh cache.
"""
import hashlib
import os
from pathlib import Path

import numba


def use_source_keyed_cache() -> None:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(here.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    base = os.environ.get("NUMBA_CACHE_DIR") or str(Path.home() / ".cache" / "sampling-engine" / "numba")
    numba.config.CACHE_DIR = str(Path(base) / digest.hexdigest()[:16])
