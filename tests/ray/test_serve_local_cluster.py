"""`serve --ray` without an address starts its own Ray, locked down: Serve's HTTP port listens on loopback only,
every Ray port that listens beyond loopback refuses a client without the cluster's token, and SIGTERM drains,
exits 0 and stops every process of that Ray. Test traffic goes to 127.0.0.1 only."""
from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import time

import grpc
import httpx
import pytest

from .serve_process import RayServeProcess

LISTEN = re.compile(r"^LISTEN\s+\d+\s+\d+\s+(\S+):(\d+)\s+\S+\s+users:\((.*)\)\s*$")
PID = re.compile(r"pid=(\d+)")


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def listening(pids: set[int]) -> list[tuple[str, int, set[int]]]:
    """(address, port, pids) of every TCP socket these processes listen on (`ss -ltnp`)."""
    text = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    out = []
    for line in text.splitlines():
        m = LISTEN.match(line.strip())
        if not m:
            continue
        owners = {int(p) for p in PID.findall(m.group(3))}
        if owners & pids:
            out.append((m.group(1).strip("[]"), int(m.group(2)), owners))
    return out


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


# One harmless read-only method of each Ray gRPC service (GCS, raylet, core worker, agents): a server answers
# UNIMPLEMENTED for services it does not have, UNAUTHENTICATED for its own when the token is missing.
PROBES = ("/ray.rpc.NodeInfoGcsService/GetAllNodeInfo", "/ray.rpc.NodeManagerService/GetNodeStats",
          "/ray.rpc.CoreWorkerService/NumPendingTasks", "/ray.rpc.ReporterService/HealthCheck",
          "/ray.rpc.LogService/ListLogs", "/ray.rpc.ObjectManagerService/Pull",
          "/ray.serve.ASGIService/HandleRequest")  # a Serve replica's own gRPC server (on all interfaces)


def refuses_without_token(port: int) -> str:
    """How the port at 127.0.0.1 turned away a client that has no token ('' if it did not)."""
    answers = []
    for method in PROBES:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
            try:
                call(b"", timeout=10)
                return ""
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    return f"{method}: UNAUTHENTICATED {e.details()}"
                answers.append(e.code().name)
    if "UNIMPLEMENTED" in answers:
        return ""  # a gRPC server that answered none of the probes: unknown, so not shown to refuse
    try:  # not gRPC: an HTTP server (an agent's)
        r = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    except httpx.HTTPError:
        return "no answer at 127.0.0.1"
    return f"HTTP {r.status_code}" if r.status_code in (401, 403) else ""


@pytest.fixture(scope="module")
def own_ray():
    s = RayServeProcess("--n-ctx", "512", "--slots", "1", "--n-threads", "1", replicas=1)
    yield s
    if s.proc.poll() is None:
        s.stop(signal.SIGKILL)


def test_http_on_loopback_and_every_other_ray_port_refuses_a_client_without_the_token(own_ray):
    r = httpx.post(own_ray.url("/v1/completions"), json={"prompt": "Hi", "max_tokens": 2}, timeout=300)
    assert r.status_code == 200, r.text
    sockets = listening(descendants(own_ray.proc.pid) | {own_ray.proc.pid})
    http_port = int(own_ray.base_url.rsplit(":", 1)[1])
    http = [(a, p) for a, p, _ in sockets if p == http_port]
    assert http and all(is_loopback(a) for a, _ in http), http
    beyond = sorted({p for a, p, _ in sockets if not is_loopback(a)})
    refused = {p: refuses_without_token(p) for p in beyond}
    assert all(refused.values()), f"ports beyond loopback that answered a client without the token: " \
                                  f"{[p for p, how in refused.items() if not how]} (all: {sockets})"


def test_sigterm_drains_exits_0_and_stops_the_ray_it_started(own_ray):
    ray_processes = descendants(own_ray.proc.pid)
    assert ray_processes, "no Ray processes under serve --ray"
    token_files = {line.split("RAY_AUTH_TOKEN_PATH=", 1)[1].split("\0", 1)[0]
                   for pid in ray_processes for line in [_environ(pid)] if "RAY_AUTH_TOKEN_PATH=" in line}
    assert token_files and all(os.stat(t).st_mode & 0o777 == 0o600 for t in token_files)
    with httpx.Client(base_url=own_ray.base_url, timeout=120) as c:
        with c.stream("POST", "/v1/completions", json={"prompt": "Count: 1, 2,", "max_tokens": 24, "stream": True,
                                                      "seed": 1, "logit_bias": {"2": -100}}) as r:
            lines = r.iter_lines()
            next(line for line in lines if line.startswith("data: "))
            own_ray.proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"  # the in-flight stream finished (drained), then Serve stopped
    assert own_ray.stop(timeout=120) == 0
    deadline = time.monotonic() + 30
    while {p for p in ray_processes if os.path.exists(f"/proc/{p}")} and time.monotonic() < deadline:
        time.sleep(0.5)
    left = {p for p in ray_processes if _alive(p)}
    assert not left, f"Ray processes left running: {left}"
    assert not any(os.path.exists(t) for t in token_files), "the token file was left behind"


def _environ(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
