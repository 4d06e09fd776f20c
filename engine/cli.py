"""Command line: `sampling-engine complete PROMPT`, `sampling-engine models [fetch NAME]`."""
from __future__ import annotations

import argparse
import codecs
import sys
import time

from .errors import CompletionError


def _cmd_complete(args) -> int:
    from .first_loop import generate
    from .loader import load_model

    t0 = time.perf_counter()
    model_id, model = load_model(args.model, n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers,
                                 n_threads=args.n_threads, verbose=args.verbose)
    load_s = time.perf_counter() - t0
    with model:
        prompt = model.tokenize(args.prompt)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        sys.stdout.write(args.prompt)
        sys.stdout.flush()
        t1 = time.perf_counter()
        n = 0
        for token in generate(model, prompt, args.max_tokens, args.temperature, args.seed):
            n += 1
            sys.stdout.write(decoder.decode(model.token_bytes(token)))
            sys.stdout.flush()
        sys.stdout.write(decoder.decode(b"", final=True) + "\n")
        gen_s = time.perf_counter() - t1
    print(f"[{model_id}] {n} tokens in {gen_s:.2f} s, {n / gen_s if gen_s else 0:.1f} tok/s "
          f"(prompt {len(prompt)} tokens, load {load_s:.2f} s)", file=sys.stderr)
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
    c.add_argument("--seed", type=int, default=0)
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
