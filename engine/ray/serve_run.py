"""`sampling-engine serve --ray`: start (or join) Ray, run the Serve application (engine/ray/serve_app.py) with
Serve's HTTP proxy on host:port, and on SIGINT/SIGTERM drain it (in-flight requests get the config's shutdown
timeout), shut Serve down, stop the local Ray we started (a joined cluster keeps running) and exit 0. Takes
plain values; the options are engine/commands/serve.py's."""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time

from ..server.logs import LOGGER, setup_logging
from ..server.config import ServerConfig
from ..server.run import exposure_warning
from .serve_app import APP_NAME, build


def free_port(host: str) -> int:
    """--port 0: a port free now (Serve's proxy takes a number, not a socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_on_ray(model: str | None, engine_kwargs: dict, config: ServerConfig, *, host: str = "127.0.0.1",
                 port: int = 8000, address: str | None = None, replicas: int = 1, min_replicas: int | None = None,
                 max_replicas: int | None = None, routing: str = "prefix") -> int:
    """Every replica runs `Engine(model, **engine_kwargs)` (which gives n_seq_max and max_queue: Serve's queues
    are sized from them) behind the server's app with `config`. address None: a local Ray, stopped on exit.
    max_replicas given: autoscaling between min_replicas (default 1) and it, starting at `replicas`."""
    from ray import serve

    from .cluster import connect

    setup_logging()
    port = port or free_port(host)
    warning = exposure_warning(host, config.api_key)
    if warning:
        LOGGER.warning(warning)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(sig, frame):
        received.append(sig)
        stop.set()
    local = {}
    if address is None:
        # Ray places a replica only where its CPUs (--n-threads each) are free: a local Ray gets at least as many
        # logical CPUs as the replicas ask for, so `--replicas 4` starts on a 2-core machine too (oversubscribed)
        wanted = (max_replicas or replicas) * (engine_kwargs.get("n_threads") or 1)
        local["num_cpus"] = max(os.cpu_count() or 1, wanted)
    cluster = connect(address, **local)
    # after ray.init, which installs Ray's own SIGTERM handler (it logs and kills the process): ours drains
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        where = f"joined the Ray cluster at {address}" if address else \
            "started a local Ray (127.0.0.1, token authentication, no dashboard)"
        LOGGER.info(where)
        serve.start(http_options={"host": host, "port": port, "location": "HeadOnly"})
        app = build(model, engine_kwargs, config, replicas=replicas, min_replicas=min_replicas,
                    max_replicas=max_replicas, routing=routing)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        engine = serve.get_deployment_handle("Engine", app_name=APP_NAME)
        card = engine.info.remote().result(timeout_s=600)
        shown_host = f"[{host}]" if ":" in host else host
        shown_replicas = (f"{min_replicas or 1}-{max_replicas} replicas (autoscaling)"
                          if max_replicas is not None else f"{replicas} replicas")
        LOGGER.info(f"serving {card['model']} at http://{shown_host}:{port}/v1 ({shown_replicas} on Ray Serve, "
                    f"{engine_kwargs['n_seq_max']} slots each, context {card['n_ctx']} per slot, routing: {routing}"
                    f"{', API key required' if config.api_key else ''})")
        while not stop.wait(0.5):
            pass
        name = signal.Signals(received[0]).name if received else "stop"
        LOGGER.info(f"{name}: shutting down (in-flight requests get {config.shutdown_timeout_s:g} s)")
        t0 = time.monotonic()
        # Deleting the application drains it: the proxy stops routing to it at once, and each replica is stopped
        # once its in-flight requests end (at most graceful_shutdown_timeout_s); then Serve itself stops.
        serve.delete(APP_NAME)
        serve.shutdown()
        LOGGER.info(f"Serve stopped in {time.monotonic() - t0:.1f} s")
        return 0
    except KeyboardInterrupt:
        return 0
    except Exception as e:  # noqa: BLE001: a deployment that cannot start (bad model, too few CPUs...)
        print(f"error: serving on Ray failed: {type(e).__name__}: {e}", file=sys.stderr)
        try:
            serve.shutdown()
        except Exception:  # noqa: BLE001
            pass
        return 1
    finally:
        cluster.close()
        for s, h in previous.items():
            signal.signal(s, h)
        LOGGER.info("stopped" + ("" if address else " (and the local Ray with it)"))
