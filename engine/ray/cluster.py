"""Where Ray work runs: a local single-node cluster we start ourselves, locked down, or a cluster the user gives.

Local (no address): node IP 127.0.0.1, no dashboard, and Ray's token authentication on (RAY_AUTH_MODE=token)
with a fresh random token per cluster in a 0600 file under the user cache, handed to Ray's processes (and so
to every worker) through RAY_AUTH_TOKEN_PATH. Ray 2.60 still binds some internal ports (GCS, raylet, its
agents) beyond loopback; the token is what refuses strangers there. We stop what we started and delete its
token; an existing cluster (an address) is the user's, with the user's own security, and is left running.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")
# Ray turns a node IP of 127.0.0.1 into the machine's address unless it runs as a single-machine "cluster" (its
# default on macOS and Windows): then the node is 127.0.0.1, and so are the addresses it hands out.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def token_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sampling-engine" / "ray"


def write_token() -> Path:
    """A fresh random token in a new 0600 file (in a 0700 directory) that only this user can read."""
    d = token_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    path = d / f"token-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


class RayCluster:
    """A connection to Ray from this process: `address` is what other processes join (with `env()`)."""

    def __init__(self, address: str, started: bool, token_path: Path | None, saved_env: dict | None = None,
                 owns_connection: bool = True):
        self.address = address
        self.started = started  # we started it: close() stops it
        self.token_path = token_path
        self._saved_env = saved_env or {}
        self._owns_connection = owns_connection

    def env(self) -> dict[str, str]:
        """Environment a process on this machine needs to join this cluster (the token travels as a path, never
        a value; a loopback cluster is only reachable by a process that also runs Ray single-machine)."""
        env = dict(LOOPBACK_ENV) if self.started else {}
        if self.token_path is not None:
            env.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)})
        return env

    def close(self) -> None:
        import ray

        if self._owns_connection and ray.is_initialized():
            ray.shutdown()  # a cluster ray.init started is stopped with it; a joined one only disconnects
        if self.started:
            _restore_env(self._saved_env)
            if self.token_path is not None:
                self.token_path.unlink(missing_ok=True)
        self._owns_connection = False

    def __enter__(self) -> "RayCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def start_local(num_cpus: int | None = None, num_gpus: int | None = None,
                object_store_memory: int | None = None) -> RayCluster:
    """Start a single-node Ray on 127.0.0.1 with token auth, and connect this process as its driver."""
    import ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; join it by its address instead")
    token_path = write_token()
    saved = {k: os.environ.get(k) for k in (*TOKEN_ENV, "RAY_AUTH_TOKEN", *LOOPBACK_ENV)}
    # Ray's processes are children of this one: they inherit the mode and the token's path from here.
    os.environ.pop("RAY_AUTH_TOKEN", None)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path), **LOOPBACK_ENV})
    try:
        _reset_token_cache()
        _single_machine(True)
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus,
                 object_store_memory=object_store_memory, log_to_driver=False, configure_logging=False)
        address = ray.get_runtime_context().gcs_address
    except BaseException:
        if ray.is_initialized():
            ray.shutdown()
        token_path.unlink(missing_ok=True)
        _restore_env(saved)
        raise
    return RayCluster(address, started=True, token_path=token_path, saved_env=saved)


def join(address: str) -> RayCluster:
    """Connect to the cluster at `address` (its security, token included, is the user's environment's)."""
    import ray

    if ray.is_initialized():  # already a driver here (a test session's cluster): use it, leave it be
        return RayCluster(ray.get_runtime_context().gcs_address, started=False,
                          token_path=_env_token_path(), owns_connection=False)
    ray.init(address=address, log_to_driver=False, configure_logging=False)
    return RayCluster(address, started=False, token_path=_env_token_path())


def connect(address: str | None, **local_kw) -> RayCluster:
    """`--ray`: a fresh local cluster without an address, else join it."""
    return start_local(**local_kw) if address is None else join(address)


def _restore_env(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _reset_token_cache()
    _single_machine(False)


def _single_machine(on: bool) -> None:
    """This process's copy of the setting LOOPBACK_ENV carries to Ray's processes (read when ray was imported)."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = not on


def _env_token_path() -> Path | None:
    p = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return Path(p) if p and os.environ.get("RAY_AUTH_MODE") == "token" else None


def _reset_token_cache() -> None:
    """Make this process see the auth settings now in os.environ: Ray caches its config (the mode) and the token
    it loaded (as its own ray.init does when it turns token auth on)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()

