"""`sampling-engine complete`: one request (its options in request_options.py), shown as text or as the API's
exact JSON (output.py), with a line of speed figures on stderr."""
from __future__ import annotations

import sys
import time

from .engine_options import add_engine_options, engine_kwargs, engine_option_errors
from .request_options import add_request_options, request_from_args

UNCHECKED_VOCAB = 2 ** 31 - 1  # checks every parameter before loading; token ids are checked after


def add_parser(sub) -> None:
    c = sub.add_parser("complete", help="complete a prompt (every Completions parameter is an option)",
                       allow_abbrev=False)
    add_request_options(c)
    c.add_argument("--json", action="store_true",
                   help="print the exact response JSON (JSON lines of chunks with --stream)")
    add_engine_options(c)
    c.set_defaults(func=run)


def run(args) -> int:
    from ..params import parse_params
    from .output import print_json, print_json_lines, print_text, stream_text

    request = request_from_args(args)
    params = parse_params(request, UNCHECKED_VOCAB)  # a bad value fails here, before the model loads
    kwargs = engine_kwargs(args)  # and so does a bad option
    from ..api import Engine

    t0 = time.perf_counter()
    with engine_option_errors():
        engine = Engine(args.model or request.get("model"), **kwargs)
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
