"""`sampling-engine serve`: its options. Imports nothing of the server extra until the command runs, so the
rest of the CLI works without it."""
from __future__ import annotations

import argparse
import os
import sys

from .config import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPTS, DEFAULT_MAX_SEQUENCES

SERVER_MODULES = ("fastapi", "uvicorn", "sse_starlette", "prometheus_client")


def add_serve_command(sub) -> None:
    s = sub.add_parser("serve", allow_abbrev=False,
                       help="OpenAI-compatible HTTP server (POST /v1/completions, SSE streaming, tokenizer routes)",
                       description="OpenAI's Completions API over HTTP on one loaded model. Needs the `server` "
                                   "extra: pip install 'sampling-engine[server]'.")
    s.add_argument("--model", default=None, help="registry name (fetched on first use) or path to a .gguf file")
    s.add_argument("--alias", action="append", metavar="NAME",
                   help="another name clients may send as `model` (repeatable)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, logged)")
    s.add_argument("--api-key", default=os.environ.get("SAMPLING_ENGINE_API_KEY"),
                   help="require `Authorization: Bearer KEY` (default: $SAMPLING_ENGINE_API_KEY; none: open)")
    s.add_argument("--slots", type=int, default=8, help="KV sequences decoded together (default 8)")
    s.add_argument("--max-queue", type=int, default=64,
                   help="requests waiting for a slot before new ones get 503 (default 64)")
    s.add_argument("--n-ctx", type=int, default=None, help="context tokens per slot (default: the model's, up to 4096)")
    s.add_argument("--n-gpu-layers", type=int, default=0, help="layers to offload to the GPU (99: all)")
    s.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: every core)")
    s.add_argument("--flash-attn", action="store_true", help="llama.cpp's flash attention")
    s.add_argument("--repack-weights", action="store_true", help="llama.cpp's repacked weight layouts")
    s.add_argument("--numerics", choices=["exact", "fast"], default="exact",
                   help="exact (default): every response independent of what shares its batch; fast: llama.cpp's "
                        "stock fast paths (not batch-invariant)")
    s.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    s.add_argument("--speculative", default=None, metavar="MODE",
                   help="'prompt-lookup': speculative decoding by n-gram match on the prompt (same output bytes); "
                        "default off")
    s.add_argument("--draft-max", type=int, default=8, help="with --speculative: most draft tokens per step (1..32)")
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
    r = s.add_argument_group("Ray Serve (the `ray` extra; docs/ray-serve.md)")
    r.add_argument("--ray", action="store_true",
                   help="serve from Ray Serve replicas, each one engine with the options above (default: a local "
                        "Ray on 127.0.0.1 with token authentication, stopped on exit)")
    r.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="join this Ray cluster instead (implies --ray); its security is yours: Ray's ports take "
                        "code from whoever can connect unless the cluster runs with RAY_AUTH_MODE=token")
    r.add_argument("--replicas", type=int, default=None, help="engine replicas (default 1)")
    r.add_argument("--min-replicas", type=int, default=None, help="autoscale on ongoing requests: at least this many")
    r.add_argument("--max-replicas", type=int, default=None, help="autoscale: at most this many")
    r.add_argument("--routing", choices=("prefix", "least-loaded"), default="prefix",
                   help="prefix: a prompt goes to the replica that holds its prefix when loads are close "
                        "(default); least-loaded: Serve's power of two choices only")
    s.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    missing = []
    for name in SERVER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(f"error: `sampling-engine serve` needs the server extra ({', '.join(missing)} missing): "
              f"pip install 'sampling-engine[server]'", file=sys.stderr)
        return 2
    for name, value, low in (("--port", args.port, 0), ("--slots", args.slots, 1), ("--max-queue", args.max_queue, 0),
                             ("--max-body-bytes", args.max_body_bytes, 1), ("--max-prompts", args.max_prompts, 1),
                             ("--max-sequences", args.max_sequences, 1)):
        if value < low or (name == "--port" and value > 65535):
            print(f"error: {name} must be {'in [0, 65535]' if name == '--port' else f'>= {low}'}, got {value}",
                  file=sys.stderr)
            return 2
    from ..speculative import parse_speculation

    try:
        parse_speculation(args.speculative, args.draft_max)
    except ValueError as e:
        print(f"error: --{str(e).replace('_', '-')}", file=sys.stderr)
        return 2
    if args.shutdown_timeout < 0:
        print(f"error: --shutdown-timeout must be >= 0, got {args.shutdown_timeout}", file=sys.stderr)
        return 2
    if args.ray or args.ray_address or args.replicas is not None or args.min_replicas is not None \
            or args.max_replicas is not None:
        return _cmd_serve_ray(args)
    from .run import serve

    return serve(args)


def _cmd_serve_ray(args: argparse.Namespace) -> int:
    try:
        import ray  # noqa: F401
        import ray.serve  # noqa: F401
    except ImportError as e:
        print(f"error: `serve --ray` needs Ray Serve ({e.name or 'ray'} is not installed): "
              f"pip install 'sampling-engine[ray]'", file=sys.stderr)
        return 2
    for name in ("--replicas", "--min-replicas", "--max-replicas"):
        value = getattr(args, name[2:].replace("-", "_"))
        if value is not None and value < (0 if name == "--min-replicas" else 1):
            print(f"error: {name} must be >= {0 if name == '--min-replicas' else 1}, got {value}", file=sys.stderr)
            return 2
    if args.min_replicas is not None and args.max_replicas is not None and args.min_replicas > args.max_replicas:
        print(f"error: --min-replicas ({args.min_replicas}) must be <= --max-replicas ({args.max_replicas})",
              file=sys.stderr)
        return 2
    if args.replicas is not None and (args.min_replicas is not None or args.max_replicas is not None):
        low, high = args.min_replicas or 0, args.max_replicas or args.replicas
        if not low <= args.replicas <= high:
            print(f"error: --replicas ({args.replicas}) is the starting count and must lie in "
                  f"[--min-replicas, --max-replicas] = [{low}, {high}]", file=sys.stderr)
            return 2
    if args.max_replicas is None and args.min_replicas is not None:
        args.max_replicas = max(args.min_replicas, args.replicas or 1)
    if args.replicas is None:
        args.replicas = args.min_replicas if args.min_replicas else 1
    from ..ray.serve_run import serve_on_ray

    return serve_on_ray(args)
