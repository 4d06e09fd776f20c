"""`sampling-engine serve`'s one process: bind, load the engine, run uvicorn; on SIGINT/SIGTERM stop accepting, let
in-flight requests finish for up to the config's shutdown timeout (then cancel them), close the engine, exit 0.
Takes plain values (model, Engine keyword arguments, ServerConfig, address); the options are engine/commands'."""
from __future__ import annotations

import contextlib
import ipaddress
import signal
import socket
import sys
import threading
import time

import uvicorn

from .app import create_app
from .config import ServerConfig
from .logs import LOGGER, setup_logging

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Server(uvicorn.Server):
    """uvicorn's server, but a shutdown signal is an orderly exit: it is not re-raised once the server has
    stopped (uvicorn does that so the process dies of the signal; we exit 0), and the app learns of it."""

    def __init__(self, config: uvicorn.Config, app_config: ServerConfig, on_started=None):
        super().__init__(config)
        self.app_config = app_config
        self.on_started = on_started

    def handle_exit(self, sig, frame) -> None:
        if not self.app_config.shutting_down:
            self.app_config.shutdown_at = time.monotonic()
            self.app_config.shutting_down = True
            name = signal.Signals(sig).name if sig else "request"
            LOGGER.info(f"{name}: shutting down (no new connections; in-flight requests get "
                        f"{self.app_config.shutdown_timeout_s:g} s, then are cancelled)")
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket (port 0: the system picks one); fails before the model loads if it is taken."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def exposure_warning(address: str, api_key: str | None) -> str | None:
    """The warning to log when the bound address is reachable from other machines and no key guards it."""
    if api_key:
        return None
    try:
        if ipaddress.ip_address(address.split("%", 1)[0]).is_loopback:
            return None
    except ValueError:
        pass
    return (f"listening on {address}, which other machines may reach, without an API key: anyone who can "
            f"connect can use this server (set --api-key or $SAMPLING_ENGINE_API_KEY, or bind 127.0.0.1)")


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(model: str | None, engine_kwargs: dict, config: ServerConfig, host: str = "127.0.0.1",
          port: int = 8000) -> int:
    """Serve `Engine(model, **engine_kwargs)` on host:port until a shutdown signal; 0 then, 1 if it could not
    listen or start. engine_kwargs gives n_seq_max and max_queue (the start-up log line names them)."""
    from ..api import Engine

    setup_logging()
    try:
        sock = bind(host, port)
    except OSError as e:
        print(f"error: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    warning = exposure_warning(sock.getsockname()[0], config.api_key)
    if warning:
        LOGGER.warning(warning)
    try:
        engine = Engine(model, **engine_kwargs)
    except BaseException:
        sock.close()
        raise
    try:
        app = create_app(engine, config)
        uv_config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                   timeout_graceful_shutdown=int(config.shutdown_timeout_s) + 2,
                                   server_header=False)
        url = _url(sock)
        started = lambda: LOGGER.info(  # noqa: E731
            f"serving {engine.model_id} at {url}/v1 ({engine_kwargs['n_seq_max']} slots, "
            f"queue {engine_kwargs['max_queue']}, "
            f"context {engine.model.n_ctx} per slot{', API key required' if config.api_key else ''})")
        server = Server(uv_config, config, on_started=started)
        server.run(sockets=[sock])
        if not server.started:
            return 1
        LOGGER.info("stopped")
        return 0
    finally:
        sock.close()
        engine.close()
