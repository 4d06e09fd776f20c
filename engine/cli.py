"""Command line: `sampling-engine complete`, `sampling-engine models [fetch NAME]`, `sampling-engine bench`,
`sampling-engine serve` (the HTTP server, engine/server/), `sampling-engine batch` (engine/batch/),
`sampling-engine doctor` (engine/doctor.py).

Exit codes: 0 done, 2 a bad request or option (`error: <param>: <message>`, the API's own message),
1 a failure of llama.cpp or of the download (one line on stderr, no traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from contextlib import contextmanager

from .cli_request import add_request_options, request_from_args
from .errors import CompletionError

UNCHECKED_VOCAB = 2 ** 31 - 1  # checks every parameter before loading; token ids are checked after


def _engine_options(p: argparse.ArgumentParser, n_ctx_default: int | None) -> None:
    g = p.add_argument_group("engine")
    g.add_argument("--model", default=None, help="registry name (fetched on first use) or path to a .gguf file")
    g.add_argument("--n-ctx", type=int, default=n_ctx_default, help="context tokens per sequence")
    g.add_argument("--n-gpu-layers", type=int, default=0, help="layers to offload to the GPU (99: all)")
    g.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: every core)")
    g.add_argument("--n-seq-max", type=int, default=None, help="KV sequences held at once (choices in parallel)")
    g.add_argument("--flash-attn", action="store_true", help="llama.cpp's flash attention")
    g.add_argument("--repack-weights", action="store_true",
                   help="llama.cpp's repacked weight layouts (faster on some CPUs; logits then depend on batching)")
    g.add_argument("--kv-cache-type", choices=["f16", "q8_0"], default="f16",
                   help="KV cache precision: q8_0 about halves KV memory and changes logits (uses flash attention)")
    g.add_argument("--numerics", choices=["exact", "fast"], default="exact",
                   help="exact (default): every response independent of what shares its batch; fast: llama.cpp's "
                        "stock fast paths (faster prompt processing on some weight types, not batch-invariant)")
    g.add_argument("--speculative", default=None, metavar="MODE",
                   help="'prompt-lookup': draft tokens from the prompt by n-gram match and check them in one step "
                        "(same output bytes; faster on input-grounded text); default off")
    g.add_argument("--draft-max", type=int, default=8, help="with --speculative: most draft tokens per step (1..32)")
    g.add_argument("--verbose", action="store_true", help="show llama.cpp's log")


def _engine_kwargs(args) -> dict:
    kw = dict(n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.n_threads,
              flash_attn=args.flash_attn, repack_weights=args.repack_weights or None, verbose=args.verbose,
              kv_cache_type=args.kv_cache_type, numerics=args.numerics, speculative=args.speculative,
              draft_max=args.draft_max)
    if args.n_seq_max is not None:
        kw["n_seq_max"] = args.n_seq_max
    return kw


@contextmanager
def _engine_option_errors():
    """The engine rejects impossible options (say, more sequences than a step holds) with ValueError: that
    is the user's bad value, so exit 2 like a bad request."""
    try:
        yield
    except ValueError as e:
        raise CompletionError(str(e)) from None


# ---- complete ---------------------------------------------------------------------------------------

def _cmd_complete(args) -> int:
    from .cli_output import print_json, print_json_lines, print_text, stream_text
    from .params import parse_params

    request = request_from_args(args)
    params = parse_params(request, UNCHECKED_VOCAB)  # a bad value fails here, before the model loads
    from .api import Engine

    t0 = time.perf_counter()
    with _engine_option_errors():
        engine = Engine(args.model or request.get("model"), **_engine_kwargs(args))
    load_s = time.perf_counter() - t0
    with engine:
        t1 = time.perf_counter()
        if args.json:
            response = engine.create_completion(**request)
            if params.stream:
                usage = print_json_lines(response)
            else:
                print_json(response)
                usage = response["usage"]
        else:
            prompt_texts = [] if params.echo else [p if isinstance(p, str) else "" for p in params.prompts]
            one_choice = len(params.prompts) == 1 and params.best_of == 1 and params.logprobs is None
            # Text output chooses its own transport: stream a lone choice as it comes, print several at the end.
            request = {k: v for k, v in request.items() if k not in ("stream", "stream_options")}
            if one_choice:
                chunks = engine.create_completion(**request, stream=True, stream_options={"include_usage": True})
                usage = stream_text(prompt_texts[0] if prompt_texts else "", chunks)
            else:
                response = engine.create_completion(**request)
                print_text(response, prompt_texts, params.n)
                usage = response["usage"]
        gen_s = time.perf_counter() - t1
    n = usage.get("completion_tokens", 0)
    print(f"[{engine.model_id}] {n} tokens in {gen_s:.2f} s, {n / gen_s if gen_s else 0:.1f} tok/s "
          f"(prompt {usage.get('prompt_tokens', 0)} tokens, load {load_s:.2f} s)", file=sys.stderr)
    return 0


# ---- models -----------------------------------------------------------------------------------------

def _cmd_models(args) -> int:
    from .fetch import fetch
    from .registry import load_registry

    default, entries = load_registry()
    if args.action == "fetch":
        if not args.name:
            raise CompletionError("models fetch: give a model name", param="model")
        if args.name not in entries:
            raise CompletionError(f"unknown model {args.name!r}; known: {', '.join(entries)}", param="model")
        print(fetch(entries[args.name]))
        return 0
    for name, e in entries.items():
        mark = "present" if e.is_present() else "absent"
        flag = " (default)" if name == default else ""
        print(f"{name:16} {mark:8} vocab {e.vocab:>7}  {e.size / 1e6:6.1f} MB  {e.path}{flag}")
    return 0


# ---- bench ------------------------------------------------------------------------------------------

def _cmd_bench(args) -> int:
    from .bench import BenchConfig, run_bench
    from .bench.chart import matplotlib_available

    if args.png and not matplotlib_available():
        raise CompletionError("matplotlib is not installed, so no chart can be drawn: pip install matplotlib "
                              "(or sampling-engine[chart]), or leave out --png", param="png")
    engine_kw = _engine_kwargs(args)
    engine_kw.pop("verbose")
    overrides = {k: v for k, v in dict(engine_kw, model=args.model, png=args.png, n_tokens=args.tokens,
                                       rounds=args.rounds).items() if v is not None}
    cfg = BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)
    with _engine_option_errors():
        run_bench(cfg)
    return 0


# ---- doctor -----------------------------------------------------------------------------------------

def _cmd_doctor(args) -> int:
    from .doctor import run

    return run(args.model, args.json, check=not args.no_check)


# ---- the parser -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sampling-engine", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("complete", help="complete a prompt (every Completions parameter is an option)",
                       allow_abbrev=False)
    add_request_options(c)
    c.add_argument("--json", action="store_true",
                   help="print the exact response JSON (JSON lines of chunks with --stream)")
    _engine_options(c, n_ctx_default=None)
    c.set_defaults(func=_cmd_complete)

    m = sub.add_parser("models", help="list known models, or fetch one")
    m.add_argument("action", nargs="?", choices=["list", "fetch"], default="list")
    m.add_argument("name", nargs="?")
    m.set_defaults(func=_cmd_models)

    b = sub.add_parser("bench", allow_abbrev=False,
                       help="ours vs llama-cpp-python vs a bare decode loop on this machine: a Markdown table")
    b.add_argument("--quick", action="store_true", help="short runs (16 tokens, 3 rounds): about a minute")
    b.add_argument("--tokens", type=int, default=None, help="tokens generated per choice (default 128)")
    b.add_argument("--rounds", type=int, default=None, help="timed rounds per contender (default 5)")
    b.add_argument("--png", metavar="PATH", default=None, help="also draw the table as a chart (needs matplotlib)")
    _engine_options(b, n_ctx_default=None)
    b.set_defaults(func=_cmd_bench)

    d = sub.add_parser("doctor", allow_abbrev=False,
                       help="what this install is, whether batch invariance holds, and what to fix (a bug "
                            "report is `sampling-engine doctor --json`)")
    d.add_argument("--json", action="store_true", help="the report as one JSON object")
    d.add_argument("--model", default=None, help="model for the runtime invariance check (default: the registry "
                                                 "default, if downloaded; never fetched)")
    d.add_argument("--no-check", action="store_true", help="skip loading a model for the invariance check")
    d.set_defaults(func=_cmd_doctor)

    from .server.cli import add_serve_command  # argparse only: the server extra is imported when `serve` runs

    add_serve_command(sub)
    from .batch.cli import add_batch_command

    add_batch_command(sub, _engine_options)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CompletionError as e:
        where = f"{e.param}: " if e.param else ""
        print(f"error: {where}{e.message}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # llama.cpp: context creation, decode
        print(f"error: {e}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print(f"error: downloading the model failed ({' '.join(map(str, e.cmd[:6]))} ... exited {e.returncode})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `sampling-engine ... | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit would fail
        return 1


if __name__ == "__main__":
    sys.exit(main())
