"""Ray integration (the optional `ray` extra): a local loopback cluster with token authentication, or an existing
cluster joined by address (`cluster.py`); batch jobs on Ray Data (`batch.py`)."""
from __future__ import annotations

from ..errors import CompletionError

INSTALL_HINT = "pip install 'sampling-engine[ray]'"


def require_ray(what: str = "--ray") -> None:
    """A clear error (exit 2 on the command line) when Ray is not installed."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as e:
        raise CompletionError(f"{what} needs Ray ({e.name or 'ray'} is not installed): {INSTALL_HINT}",
                              param=what.lstrip("-") or "ray") from None
