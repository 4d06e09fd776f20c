"""Fail at once, with the fix, when the top-level name `kernels` is not our package (Hugging Face's
`kernels`, an optional dependency of transformers, installs the same import name)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

MARKER = "sampling-engine's numba sampling kernels"  # the first line of our kernels/__init__.py docstring


def ensure_our_kernels() -> None:
    expected = Path(__file__).resolve().parent.parent / "kernels"
    spec = importlib.util.find_spec("kernels")  # locates without importing it
    origin = Path(spec.origin).resolve() if spec is not None and spec.origin else None
    if origin is not None and origin == expected / "__init__.py" and _has_marker(origin):
        return
    found = "nothing" if spec is None else str(origin or spec.submodule_search_locations or spec.name)
    raise ImportError(
        f"sampling-engine needs its own top-level package `kernels` ({expected}), but `import kernels` "
        f"resolves to {found}. Another distribution installs the same name (for example Hugging Face's "
        "`kernels`, an optional dependency of transformers). Fix: install sampling-engine in its own "
        "virtual environment (python -m venv .venv && .venv/bin/pip install sampling-engine), or remove the "
        "other package and reinstall ours: pip uninstall kernels && pip install --force-reinstall --no-deps "
        "sampling-engine.")


def _has_marker(init: Path) -> bool:
    try:
        with open(init, encoding="utf-8") as f:
            return MARKER in f.read(400)
    except OSError:
        return False
