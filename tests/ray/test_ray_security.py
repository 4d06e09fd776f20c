"""The local cluster is closed to the network: every socket its processes listen on is loopback, and Ray's token
authentication refuses a client without the token (all traffic here goes to 127.0.0.1 only)."""
from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

grpc = pytest.importorskip("grpc")

LOOPBACK = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(children.get(pid, []))
    return out


def _listening() -> dict[int, tuple]:
    """inode -> (address, port) of every listening TCP socket on this machine (/proc/net/tcp, tcp6)."""
    out = {}
    for name, size in (("tcp", 4), ("tcp6", 16)):
        for row in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            f = row.split()
            if f[3] != "0A":  # LISTEN
                continue
            hex_ip, hex_port = f[1].split(":")
            raw = bytes.fromhex(hex_ip)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))  # little-endian words
            ip = ipaddress.ip_address(raw)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            out[int(f[9])] = (ip, int(hex_port, 16))
    return out


def cluster_sockets(root_pid: int) -> list[tuple[int, str, object, int]]:
    """(pid, process name, address, port) of each socket the cluster's processes listen on."""
    listening = _listening()
    found = []
    for pid in _descendants(root_pid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in listening:
                    found.append((pid, name, *listening[inode]))
    return found


def _call(port: int, method: str, token: str | None):
    md = [("authorization", f"Bearer {token}")] if token else None
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        try:
            ch.unary_unary(method)(b"", timeout=10, metadata=md)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()


def test_every_port_of_the_local_cluster_is_loopback_and_gcs_wants_the_token(ray_cluster):
    import ray

    ray.get(ray.remote(lambda: 1).remote())  # a worker is up too
    sockets = cluster_sockets(os.getpid())
    names = {name for _, name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets
    beyond = [s for s in sockets if s[2] not in LOOPBACK]
    assert not beyond, f"bound beyond loopback: {beyond}"
    # Were one bound to all interfaces, it would answer on 127.0.0.1 too: this is the check it would get.
    gcs_port = int(ray_cluster.address.rsplit(":", 1)[1])
    assert ray_cluster.address.startswith("127.0.0.1:")
    method = "/ray.rpc.InternalKVGcsService/InternalKVKeys"
    assert _call(gcs_port, method, None) == grpc.StatusCode.UNAUTHENTICATED
    assert _call(gcs_port, method, "0" * 64) == grpc.StatusCode.UNAUTHENTICATED
    assert _call(gcs_port, method, ray_cluster.token_path.read_text()) == grpc.StatusCode.OK


def test_the_token_file_is_private_and_fresh(ray_cluster):
    st = ray_cluster.token_path.stat()
    assert st.st_mode & 0o777 == 0o600 and ray_cluster.token_path.parent.stat().st_mode & 0o777 == 0o700
    assert len(ray_cluster.token_path.read_text()) == 64
    assert "RAY_AUTH_TOKEN" not in ray_cluster.env()  # the path travels, never the value
