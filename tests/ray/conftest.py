"""One local Ray cluster for every Ray test (batch and serve): started on first use, stopped at the end.

It is the same locked-down cluster `--ray` starts (engine/ray/cluster.py): 127.0.0.1, no dashboard, token
authentication with a fresh token. This test process is its driver; a subprocess joins it with
`cluster.address` and `cluster.env()` (the token's path, never its value).
"""
from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="the Ray tests need the ray extra: pip install 'sampling-engine[ray]'")

# 4 logical CPUs on any machine: two batch replicas or two serve replicas (1 CPU each) plus Ray Data's own tasks
RAY_CPUS = 4
OBJECT_STORE_BYTES = 256 * 2 ** 20


@pytest.fixture(scope="session")
def ray_cluster():
    from engine.ray.cluster import start_local

    cluster = start_local(num_cpus=RAY_CPUS, object_store_memory=OBJECT_STORE_BYTES)
    yield cluster
    cluster.close()
