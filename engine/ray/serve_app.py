"""The Ray Serve application behind `sampling-engine serve --ray`: engine replicas, each holding one Engine and
the server's own ASGI app (engine/server/app.py: every route, error, limit, API key, metric), behind a thin
ingress that carries each HTTP request to one of them over a deployment handle (engine/ray/asgi_bridge.py says
why a handle and not Serve's proxy directly) with the prefix-aware router (engine/ray/prefix_router.py).

A plain `@serve.deployment` and not Ray Serve LLM's `LLMServer`: that protocol is shaped around vLLM's engine
(chat and completion request models, its own OpenAI ingress and error mapping), so using it would mean a second
implementation of the API that this project already serves exactly; here the replicas run the same app as
`serve`, byte for byte.
"""
from __future__ import annotations

import asyncio
import os

from ray import serve
from ray.serve.config import AutoscalingConfig, RequestRouterConfig

from .asgi_bridge import declared_too_large, portable_scope, read_body, replay, run_asgi, send_failure
from .prefix_router import PrefixAwareRouter

APP_NAME = "sampling-engine"


class EngineReplica:
    """One Engine and the `serve` app over it; `handle` runs one HTTP request through that app."""

    def __init__(self, model: str | None, engine_kwargs: dict, config):
        from ..api import Engine
        from ..server.app import create_app
        from ..server.logs import setup_logging

        setup_logging()
        self.engine = Engine(model, **engine_kwargs)
        self.app = create_app(self.engine, config)
        try:
            self.tag = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001: outside Serve (a unit test)
            self.tag = f"local-{os.getpid()}"

    async def handle(self, scope: dict, body: bytes):
        async for batch in run_asgi(self.app, scope, body, self.tag):
            yield batch

    def info(self) -> dict:
        return {"model": self.engine.model_id, "n_ctx": self.engine.model.n_ctx, "replica": self.tag,
                "pid": os.getpid()}

    def check_health(self) -> None:
        """Serve restarts a replica whose engine loop died."""
        if not self.engine.loop.is_alive():
            raise RuntimeError("the engine loop thread is not running")

    def __del__(self):
        # Serve calls this once the replica has drained (graceful_shutdown_timeout_s): free the model.
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


class Forwarder:
    """The ingress's raw ASGI app (no routes of its own): read the request, send it to an engine replica over the
    handle, replay the answer."""

    def __init__(self, engine_handle, max_body_bytes: int):
        self.engine = engine_handle.options(stream=True, method_name="handle")
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":  # Serve runs the app's lifespan: nothing to start or stop here
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        if scope["type"] != "http":
            return
        if declared_too_large(scope, self.max_body_bytes):
            body, gone = b"", False
        else:
            body, gone = await read_body(receive, self.max_body_bytes)
        if gone:
            return
        try:
            response = self.engine.remote(portable_scope(scope), body)
        except Exception as e:  # noqa: BLE001: Serve refused it before it left (e.g. its queue is full)
            await send_failure(e, send)
            return

        async def client_left():
            while (await receive())["type"] != "http.disconnect":
                pass

        forward = asyncio.ensure_future(replay(response, send))
        watch = asyncio.ensure_future(client_left())
        try:
            await asyncio.wait({forward, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            if not forward.done():
                forward.cancel()
                response.cancel()  # the engine replica's generator ends: its app sees the disconnect


class Ingress:
    """The deployment Serve's proxy sends every HTTP request to (`@serve.ingress` with a late-built app)."""

    def __init__(self, engine_handle, max_body_bytes: int):
        self.forwarder = Forwarder(engine_handle, max_body_bytes)

    def __serve_build_asgi_app__(self):
        return self.forwarder


def build(model: str | None, engine_kwargs: dict, config, *, replicas: int | None = None,
          min_replicas: int | None = None, max_replicas: int | None = None, routing: str = "prefix"):
    """The bound application for `serve.run`: every replica an `Engine(model, **engine_kwargs)` (whose n_seq_max
    and max_queue size Serve's queues) with the server's app over `config`."""
    slots, max_queue = engine_kwargs["n_seq_max"], engine_kwargs["max_queue"]
    shutdown_timeout = config.shutdown_timeout_s
    counts: dict = {}
    if min_replicas is not None or max_replicas is not None:
        low = min_replicas if min_replicas is not None else 1
        high = max_replicas if max_replicas is not None else max(low, replicas or 1)
        counts["autoscaling_config"] = AutoscalingConfig(min_replicas=low, max_replicas=high,
                                                         initial_replicas=replicas or low,
                                                         target_ongoing_requests=max(1, slots))
    else:
        counts["num_replicas"] = replicas or 1
    actor = {"num_cpus": engine_kwargs.get("n_threads") or 1}
    if engine_kwargs.get("n_gpu_layers"):
        actor["num_gpus"] = 1  # a GPU per replica when offloading
    env = {k: v for k, v in os.environ.items() if k.startswith("SAMPLING_ENGINE_") and k != "SAMPLING_ENGINE_API_KEY"}
    if env:
        actor["runtime_env"] = {"env_vars": env}
    router = RequestRouterConfig(request_router_class=PrefixAwareRouter,
                                 request_router_kwargs={"prefix_routing": routing == "prefix",
                                                        "history": 2 * slots})
    engine = serve.deployment(EngineReplica, name="Engine", ray_actor_options=actor,
                              # the engine queues up to --max-queue itself and answers 503 past it
                              max_ongoing_requests=slots + max_queue,
                              # and Serve holds at most as many again before it answers 503 (engine_overloaded)
                              max_queued_requests=max_queue,
                              graceful_shutdown_timeout_s=shutdown_timeout,
                              request_router_config=router, **counts)
    ingress = serve.deployment(serve.ingress()(Ingress), name="Ingress",
                               ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100_000,
                               graceful_shutdown_timeout_s=shutdown_timeout + 1)
    return ingress.bind(engine.bind(model, engine_kwargs, config), config.max_body_bytes)
