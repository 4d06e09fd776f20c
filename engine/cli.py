"""Command line: `sampling-engine complete PROMPT`, `sampling-engine models [fetch NAME]`."""
from __future__ import annotations

import argparse
import sys
import time

from .errors import CompletionError


def _cmd_complete(args) -> int:
    from .api import Engine

    t0 = time.perf_counter()
    engine = Engine(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.n_threads,
                    verbose=args.verbose)
    load_s = time.perf_counter() - t0
    with engine:
        request = dict(prompt=args.prompt, max_tokens=args.max_tokens, temperature=args.temperature,
                       top_p=args.top_p, seed=args.seed, stream=True, stream_options={"include_usage": True})
        if args.stop:
            request["stop"] = args.stop
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
        t1 = time.perf_counter()
        usage = {}
        for chunk in engine.create_completion(**request):
            for choice in chunk["choices"]:
                sys.stdout.write(choice["text"])
                sys.stdout.flush()
            usage = chunk.get("usage") or usage
        sys.stdout.write("\n")
        gen_s = time.perf_counter() - t1
    n = usage.get("completion_tokens", 0)
    print(f"[{engine.model_id}] {n} tokens in {gen_s:.2f} s, {n / gen_s if gen_s else 0:.1f} tok/s "
          f"(prompt {usage.get('prompt_tokens', 0)} tokens, load {load_s:.2f} s)", file=sys.stderr)
    return 0


def _cmd_models(args) -> int:
    from .fetch import fetch
    from .registry import load_registry

    default, entries = load_registry()
    if args.action == "fetch":
        if args.name not in entries:
            print(f"unknown model {args.name!r}; known: {', '.join(entries)}", file=sys.stderr)
            return 2
        print(fetch(entries[args.name]))
        return 0
    for name, e in entries.items():
        mark = "present" if e.is_present() else "absent"
        flag = " (default)" if name == default else ""
        print(f"{name:16} {mark:8} vocab {e.vocab:>7}  {e.size / 1e6:6.1f} MB  {e.path}{flag}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sampling-engine", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("complete", help="complete a prompt, streaming the text")
    c.add_argument("prompt")
    c.add_argument("--model", default=None, help="registry name or path to a .gguf file")
    c.add_argument("--max-tokens", type=int, default=64)
    c.add_argument("--temperature", type=float, default=0.0)
    c.add_argument("--top-p", type=float, default=1.0)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--stop", action="append", help="stop string (repeatable, up to 4)")
    c.add_argument("--n-ctx", type=int, default=None)
    c.add_argument("--n-gpu-layers", type=int, default=0)
    c.add_argument("--n-threads", type=int, default=None)
    c.add_argument("--verbose", action="store_true", help="show llama.cpp's log")
    c.set_defaults(func=_cmd_complete)

    m = sub.add_parser("models", help="list known models, or fetch one")
    m.add_argument("action", nargs="?", choices=["list", "fetch"], default="list")
    m.add_argument("name", nargs="?")
    m.set_defaults(func=_cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "action", None) == "fetch" and not args.name:
        print("models fetch: give a model name", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except CompletionError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
