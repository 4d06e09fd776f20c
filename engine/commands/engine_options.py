"""The engine's options, defined once: every command that loads a model (`complete`, `serve` and
`serve --ray`, `batch` and `batch --ray`, `bench`) takes these, under the same names, with the same defaults
and help, and turns them into the same `Engine(...)` keyword arguments."""
from __future__ import annotations

import argparse
from contextlib import contextmanager

from ..errors import CompletionError

# Engine's own defaults (engine/api.py; a test checks they agree): `serve` states them, since a server holds
# every slot from the start, and Ray Serve sizes its queues from them.
DEFAULT_SLOTS = 8
DEFAULT_MAX_QUEUE = 64

GROUP = "engine options"


def add_engine_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(GROUP)
    g.add_argument("--model", default=None, help="registry name (fetched on first use) or path to a .gguf file")
    g.add_argument("--alias", action="append", default=None, metavar="NAME",
                   help="another name requests may give as `model` (repeatable)")
    g.add_argument("--n-ctx", type=int, default=None,
                   help="context tokens per slot (default: the model's, up to 4096; bench: 1024)")
    g.add_argument("--n-gpu-layers", type=int, default=0, help="layers to offload to the GPU (99: all)")
    g.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: every core)")
    g.add_argument("--slots", type=int, default=None,
                   help=f"KV sequences decoded together: a request's choices, or concurrent requests "
                        f"(default {DEFAULT_SLOTS})")
    g.add_argument("--n-seq-max", dest="slots", type=int, default=None, help=argparse.SUPPRESS)  # old name
    g.add_argument("--max-queue", type=int, default=None,
                   help=f"requests waiting for a slot before new ones are refused (the server's 503; "
                        f"default {DEFAULT_MAX_QUEUE})")
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


def at_least(option: str, value, low) -> None:
    """A command-line value below its range is the user's bad option: exit 2, naming it."""
    if value is not None and value < low:
        raise CompletionError(f"{option} must be >= {low}, got {value}")


def check_engine_options(args: argparse.Namespace) -> None:
    """Every range the engine's options have, checked before anything loads."""
    from ..speculative import parse_speculation

    at_least("--slots", args.slots, 1)
    at_least("--max-queue", args.max_queue, 0)
    try:
        parse_speculation(args.speculative, args.draft_max)
    except ValueError as e:  # "draft_max must be ...": name the option as it was typed
        name, _, rest = str(e).partition(" ")
        raise CompletionError(f"--{name.replace('_', '-')} {rest}") from None


def engine_kwargs(args: argparse.Namespace) -> dict:
    """`Engine(args.model, **engine_kwargs(args))`: the options checked, those left out left to Engine."""
    check_engine_options(args)
    kw = dict(n_ctx=args.n_ctx, n_gpu_layers=args.n_gpu_layers, n_threads=args.n_threads,
              flash_attn=args.flash_attn, repack_weights=args.repack_weights or None, verbose=args.verbose,
              kv_cache_type=args.kv_cache_type, numerics=args.numerics, speculative=args.speculative,
              draft_max=args.draft_max, aliases=tuple(args.alias or ()))
    if args.slots is not None:
        kw["n_seq_max"] = args.slots
    if args.max_queue is not None:
        kw["max_queue"] = args.max_queue
    return kw


@contextmanager
def engine_option_errors():
    """The engine rejects impossible options (say, more sequences than a step holds) with ValueError: that
    is the user's bad value, so exit 2 like a bad request."""
    try:
        yield
    except ValueError as e:
        raise CompletionError(str(e)) from None
