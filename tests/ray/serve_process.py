"""`sampling-engine serve --ray` in a subprocess, for the Ray Serve tests: by default it joins the test session's
loopback cluster (tests/ray/conftest.py) with 2 engine replicas; `shared_ray_server()` is one such server for
every module (stopped at exit).

It answers like tests/server_process.ServerProcess, so the single-process server's tests run against it
unchanged; /metrics is summed over the replicas (each one is asked in turn, named by the
`x-sampling-engine-replica` header every response carries and the router honours).
"""
from __future__ import annotations

import atexit
import threading
import time

import httpx
import pytest

from ..server_process import ServerProcess

REPLICA_HEADER = "x-sampling-engine-replica"
# 2 replicas x 4 slots: 8 slots in all, like the single server's shared instance
RAY_ARGS = ("--n-ctx", "2048", "--slots", "4", "--max-queue", "64", "--n-threads", "1")


class RayServeProcess(ServerProcess):
    def __init__(self, *args: str, replicas: int = 2, address: str | None = None, start_timeout: float = 600.0):
        self.replicas = replicas
        ray_args = ("--ray", "--replicas", str(replicas)) + (("--ray-address", address) if address else ())
        super().__init__(*ray_args, *args, start_timeout=start_timeout)
        self._ids: list[str] = []

    def replica_ids(self, timeout: float = 120.0) -> list[str]:
        """The running replicas' ids (each response names the replica that answered)."""
        deadline = time.monotonic() + timeout
        seen = set(self._ids)
        while len(seen) < self.replicas and time.monotonic() < deadline:
            r = httpx.get(self.url("/health"), timeout=30)
            if r.status_code == 200:
                seen.add(r.headers[REPLICA_HEADER])
        self._ids = sorted(seen)
        return self._ids

    def forget_replicas(self) -> None:
        self._ids = []

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for rid in self.replica_ids():
            for name, value in self.replica_metrics(rid).items():
                out[name] = out.get(name, 0.0) + value
        return out

    def replica_metrics(self, rid: str) -> dict[str, float]:
        r = httpx.get(self.url("/metrics"), headers={**self.headers, REPLICA_HEADER: rid}, timeout=30)
        assert r.headers[REPLICA_HEADER] == rid, "the router did not honour the replica header"
        out = {}
        for line in r.text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out


@pytest.fixture(scope="session")
def ray_server(ray_cluster):
    """The shared `serve --ray --replicas 2` (import into a module; stopped before the cluster is)."""
    s = shared_ray_server(ray_cluster.address)
    yield s
    assert s.stop() == 0  # SIGTERM: drained, Serve shut down, the joined cluster left running


_shared: RayServeProcess | None = None
_lock = threading.Lock()


def shared_ray_server(address: str) -> RayServeProcess:
    global _shared
    with _lock:
        if _shared is None or _shared.proc.poll() is not None:
            _shared = RayServeProcess(*RAY_ARGS, address=address)
            atexit.register(_shared.stop)
        return _shared
