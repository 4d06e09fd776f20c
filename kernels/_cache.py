"""Numba's on-disk cache for our kernels only, in a folder keyed by the source of every kernel file.

Numba invalidates a cached function only when its own file changes, not when a kernel it calls (and
inlined) changes in another file; a stale cache then silently runs old code. Keying the cache folder by a
hash of all kernel sources makes any edit start a fresh cache.

The folder is chosen per function, by a cache locator that answers only for functions whose source file
is in this package: numba's process-wide `config.CACHE_DIR` is never touched, so an embedding app's own
`@njit(cache=True)` functions cache where they always did. (Setting CACHE_DIR while our modules load
would not be enough: `@overload` implementations are jitted later, when a kernel first compiles, and
theirs would then land in `__pycache__` inside site-packages.)
"""
import hashlib
import os
from pathlib import Path

from numba.core import caching

HERE = Path(__file__).resolve().parent


def kernel_cache_dir() -> Path:
    """$NUMBA_CACHE_DIR, else $XDG_CACHE_HOME/sampling-engine/numba, else ~/.cache/sampling-engine/numba;
    then a folder named by the hash of the kernel sources."""
    digest = hashlib.sha256()
    for path in sorted(HERE.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    base = os.environ.get("NUMBA_CACHE_DIR")
    if not base:
        base = str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sampling-engine" / "numba")
    return Path(base) / digest.hexdigest()[:16]


_UserProvided = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator
_CacheImpl = getattr(caching, "CacheImpl", None) or caching._CacheImpl


class KernelCacheLocator(_UserProvided):
    """Numba's user-provided-folder locator, with our folder, for functions defined in this package."""

    _dir: Path | None = None  # computed on first use: hashing the sources costs ~1 ms

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        if KernelCacheLocator._dir is None:
            KernelCacheLocator._dir = kernel_cache_dir()
        self._cache_path = str(KernelCacheLocator._dir / self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != HERE:
            return None  # not ours: numba's own locators decide, as if we were not here
        self = cls(py_func, py_file)
        try:
            self.ensure_cache_path()
        except OSError:
            return None
        return self


def use_kernel_cache_locator() -> None:
    """Put KernelCacheLocator first in numba's locator list (once); it declines every other function."""
    classes = _CacheImpl._locator_classes
    if KernelCacheLocator not in classes:
        classes.insert(0, KernelCacheLocator)
