"""`sampling-engine batch INPUT OUTPUT`: an OpenAI Batch file run into an output JSONL, resumable, on this
machine (engine/batch/) or on Ray Data replicas (engine/ray/batch.py), each engine built from the same keyword
arguments. The parser imports nothing heavy."""
from __future__ import annotations

import argparse

from ..errors import CompletionError
from .engine_options import add_engine_options, at_least, engine_kwargs, engine_option_errors

RAY_LOCAL = "local"


def add_parser(sub) -> None:
    b = sub.add_parser(
        "batch", allow_abbrev=False,
        help="run an OpenAI Batch file (JSONL of /v1/completions requests) into an output JSONL, resumable",
        description="One output line per input line, in input order (OpenAI's Batch output format). Output is "
                    "appended line by line; a killed run continues with --resume. --ray runs it on a Ray cluster "
                    "(pip install 'sampling-engine[ray]').")
    b.add_argument("input", metavar="INPUT", help="JSONL: {custom_id, method: POST, url: /v1/completions, body}")
    b.add_argument("output", metavar="OUTPUT", help="JSONL written in input order")
    b.add_argument("--resume", action="store_true", help="continue a job: keep OUTPUT's lines, run the rest")
    b.add_argument("--overwrite", action="store_true", help="empty a non-empty OUTPUT first")
    b.add_argument("--stable-ids", action="store_true",
                   help="ids from custom_id and created=0 (so seeded runs give byte-identical files)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--window", type=int, default=None, help="requests in flight (default 2 x slots)")
    add_engine_options(b)
    r = b.add_argument_group("ray")
    r.add_argument("--ray", nargs="?", const=RAY_LOCAL, default=None, metavar="ADDRESS",
                   help="run on Ray: a local loopback cluster (token auth) or the cluster at ADDRESS")
    r.add_argument("--replicas", type=int, default=2, help="engine replicas (Ray actors), default 2")
    r.add_argument("--ray-output-dir", action="store_true",
                   help="OUTPUT is a directory: each replica writes its blocks there as part-<first line>.jsonl "
                        "(for outputs larger than one disk; `cat OUTPUT/part-*.jsonl` is the single file)")
    r.add_argument("--block-lines", type=int, default=64, help="lines per Ray block (default 64)")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..batch.job import open_job, run_local

    for option, value in (("--window", args.window), ("--replicas", args.replicas),
                          ("--block-lines", args.block_lines)):
        at_least(option, value, 1)
    engine_kw = engine_kwargs(args)
    if args.ray is not None:
        from ..ray import require_ray

        require_ray()
        from ..ray.batch import run_ray

        if args.ray_output_dir:
            from ..ray.parts import open_parts_job

            files = open_parts_job(args.input, args.output, args.block_lines, args.resume, args.overwrite)
        else:
            files = open_job(args.input, args.output, args.resume, args.overwrite, block_lines=args.block_lines)
        return run_ray(files, args.model, engine_kw, address=None if args.ray == RAY_LOCAL else args.ray,
                       replicas=args.replicas, stable_ids=args.stable_ids, quiet=args.quiet, window=args.window,
                       parts_dir=files.output if args.ray_output_dir else None)
    if args.ray_output_dir:
        raise CompletionError("--ray-output-dir needs --ray", param="ray-output-dir")
    files = open_job(args.input, args.output, args.resume, args.overwrite)
    from ..api import Engine

    with engine_option_errors():
        engine = Engine(args.model, **engine_kw)
    with engine:
        return run_local(engine, files, args.stable_ids, args.quiet, args.window)
