"""Ray integration (the optional `ray` extra; nothing here imports Ray until it is used, `require_ray` says how to
install it):

- `cluster.py`: where Ray work runs: a local loopback cluster with token authentication, started and stopped
  by us, or an existing cluster joined by address.
- `batch.py`: `sampling-engine batch --ray`: the batch job on Ray Data, an actor pool of engine replicas each
  running blocks of lines through engine.batch.run_batch; `parts.py`: its `--ray-output-dir` (one part file
  per block, written by the replica that answered it).
- `serve_app.py`: `sampling-engine serve --ray`: the Ray Serve application, engine replicas running the
  server's own ASGI app behind a thin ingress; `asgi_bridge.py` carries one HTTP request from the ingress to a
  replica over a deployment handle; `prefix_router.py` routes it to the replica most likely to hold its
  prompt's prefix; `serve_run.py` starts, drains and stops it.
"""
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
