"""`sampling-engine bench`: ours vs llama-cpp-python vs a bare decode loop on this machine (engine/bench/), with
the engine's options passed through to every contender that takes them."""
from __future__ import annotations

from ..errors import CompletionError
from .engine_options import add_engine_options, engine_kwargs, engine_option_errors


def add_parser(sub) -> None:
    b = sub.add_parser("bench", allow_abbrev=False,
                       help="ours vs llama-cpp-python vs a bare decode loop on this machine: a Markdown table")
    b.add_argument("--quick", action="store_true", help="short runs (16 tokens, 3 rounds): about a minute")
    b.add_argument("--tokens", type=int, default=None, help="tokens generated per choice (default 128)")
    b.add_argument("--rounds", type=int, default=None, help="timed rounds per contender (default 5)")
    b.add_argument("--png", metavar="PATH", default=None, help="also draw the table as a chart (needs matplotlib)")
    add_engine_options(b)
    b.set_defaults(func=run)


def run(args) -> int:
    from ..bench import BenchConfig, run_bench
    from ..bench.chart import matplotlib_available

    if args.png and not matplotlib_available():
        raise CompletionError("matplotlib is not installed, so no chart can be drawn: pip install matplotlib "
                              "(or sampling-engine[chart]), or leave out --png", param="png")
    # BenchConfig names its engine fields as Engine does; left-out options keep bench's own defaults
    overrides = {k: v for k, v in dict(engine_kwargs(args), model=args.model, png=args.png, n_tokens=args.tokens,
                                       rounds=args.rounds).items() if v is not None}
    cfg = BenchConfig.quick(**overrides) if args.quick else BenchConfig(**overrides)
    with engine_option_errors():
        run_bench(cfg)
    return 0
