"""`sampling-engine serve`: the server's own options (address, key, limits, shutdown, the Ray group) on top of
the engine's, checked before anything starts; then one process (engine/server/run.py) or Ray Serve replicas
(engine/ray/serve_run.py), each engine built from the same keyword arguments. Imports nothing of the server
extra or of Ray until the command runs, so the rest of the CLI works without them."""
from __future__ import annotations

import argparse
import os

from ..errors import CompletionError
from ..server.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPTS, DEFAULT_MAX_SEQUENCES, ServerConfig
from .engine_options import (DEFAULT_MAX_QUEUE, DEFAULT_SLOTS, add_engine_options, at_least, engine_kwargs,
                             engine_option_errors)

SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "prometheus_client")


def add_parser(sub) -> None:
    s = sub.add_parser("serve", allow_abbrev=False,
                       help="OpenAI-compatible HTTP server (POST /v1/completions, SSE streaming, tokenizer routes)",
                       description="OpenAI's Completions API over HTTP on one loaded model. Needs the `server` "
                                   "extra: pip install 'sampling-engine[server]'.")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, logged)")
    s.add_argument("--api-key", default=os.environ.get("SAMPLING_ENGINE_API_KEY"),
                   help="require `Authorization: Bearer KEY` (default: $SAMPLING_ENGINE_API_KEY; none: open)")
    s.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                   help=f"larger request bodies get 413 (default {DEFAULT_MAX_BODY_BYTES})")
    s.add_argument("--max-prompts", type=int, default=DEFAULT_MAX_PROMPTS,
                   help=f"prompts one request may hold; more get 400 (default {DEFAULT_MAX_PROMPTS})")
    s.add_argument("--max-sequences", type=int, default=DEFAULT_MAX_SEQUENCES,
                   help=f"sequences one request may ask for, prompts x best_of (n unless given); more get 400 "
                        f"(default {DEFAULT_MAX_SEQUENCES})")
    s.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                   help="allow browser requests from this origin (repeatable; '*' for any); default: no CORS")
    s.add_argument("--log-prompts", action="store_true", help="include prompts in the request log lines")
    s.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="on SIGINT/SIGTERM, seconds in-flight requests get before they are cancelled (default 30)")
    add_engine_options(s)
    r = s.add_argument_group("Ray Serve (the `ray` extra; docs/ray-serve.md)")
    r.add_argument("--ray", action="store_true",
                   help="serve from Ray Serve replicas, each one engine with the engine options above (default: a "
                        "local Ray on 127.0.0.1 with token authentication, stopped on exit)")
    r.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join this Ray cluster instead (implies --ray); its security is yours: Ray's ports take "
                        "code from whoever can connect unless the cluster runs with RAY_AUTH_MODE=token")
    r.add_argument("--replicas", type=int, default=None, help="engine replicas (default 1)")
    r.add_argument("--min-replicas", type=int, default=None, help="autoscale on ongoing requests: at least this many")
    r.add_argument("--max-replicas", type=int, default=None, help="autoscale: at most this many")
    r.add_argument("--routing", choices=("prefix", "least-loaded"), default="prefix",
                   help="prefix: a prompt goes to the replica that holds its prefix when loads are close "
                        "(default); least-loaded: Serve's power of two choices only")
    s.set_defaults(func=run)


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The server's limits and key from `serve`'s options (one process, or every Ray Serve replica)."""
    for option, low in (("--max-body-bytes", 1), ("--max-prompts", 1), ("--max-sequences", 1),
                        ("--shutdown-timeout", 0)):
        at_least(option, getattr(args, option[2:].replace("-", "_")), low)
    return ServerConfig(api_key=args.api_key or None, max_body_bytes=args.max_body_bytes,
                        max_prompts=args.max_prompts, max_sequences=args.max_sequences,
                        log_prompts=args.log_prompts, cors_origins=tuple(args.cors_origin or ()),
                        shutdown_timeout_s=args.shutdown_timeout)


def serve_engine_kwargs(args: argparse.Namespace) -> dict:
    """The engine options, and a server's own: it holds every slot from the start (no re-creation under load),
    and states its slots and queue (the log line names them; Ray Serve sizes its queues from them)."""
    kw = engine_kwargs(args)
    kw.setdefault("n_seq_max", DEFAULT_SLOTS)
    kw.setdefault("max_queue", DEFAULT_MAX_QUEUE)
    kw["lazy_slots"] = False
    return kw


def on_ray(args: argparse.Namespace) -> bool:
    return bool(args.ray or args.ray_address or args.replicas is not None or args.min_replicas is not None
                or args.max_replicas is not None)


def replica_counts(args: argparse.Namespace) -> dict:
    """`serve --ray`'s replicas, checked, as serve_on_ray takes them: a fixed count, or autoscaling bounds with
    the starting count inside them."""
    replicas, low, high = args.replicas, args.min_replicas, args.max_replicas
    at_least("--replicas", replicas, 1)
    at_least("--min-replicas", low, 0)
    at_least("--max-replicas", high, 1)
    if low is not None and high is not None and low > high:
        raise CompletionError(f"--min-replicas ({low}) must be <= --max-replicas ({high})")
    if replicas is not None and (low is not None or high is not None):
        lo, hi = low or 0, high or replicas
        if not lo <= replicas <= hi:
            raise CompletionError(f"--replicas ({replicas}) is the starting count and must lie in "
                                  f"[--min-replicas, --max-replicas] = [{lo}, {hi}]")
    if high is None and low is not None:
        high = max(low, replicas or 1)
    if replicas is None:
        replicas = low if low else 1
    return dict(replicas=replicas, min_replicas=low, max_replicas=high)


def _require_server_extra() -> None:
    import importlib

    missing = []
    for name in SERVER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise CompletionError(f"`sampling-engine serve` needs the server extra ({', '.join(missing)} missing): "
                              f"pip install 'sampling-engine[server]'")


def _require_ray_serve() -> None:
    try:
        import ray  # noqa: F401
        import ray.serve  # noqa: F401
    except ImportError as e:
        raise CompletionError(f"`serve --ray` needs Ray Serve ({e.name or 'ray'} is not installed): "
                              f"pip install 'sampling-engine[ray]'") from None


def run(args: argparse.Namespace) -> int:
    _require_server_extra()
    if not 0 <= args.port <= 65535:
        raise CompletionError(f"--port must be in [0, 65535], got {args.port}")
    kwargs = serve_engine_kwargs(args)
    config = server_config(args)
    if on_ray(args):
        _require_ray_serve()
        counts = replica_counts(args)
        from ..ray.serve_run import serve_on_ray

        return serve_on_ray(args.model, kwargs, config, host=args.host, port=args.port, address=args.ray_address,
                            routing=args.routing, **counts)
    from ..server.run import serve

    with engine_option_errors():  # Engine's ValueError: an impossible option, exit 2 as in every command
        return serve(args.model, kwargs, config, host=args.host, port=args.port)
