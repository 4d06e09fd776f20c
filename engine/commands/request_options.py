"""The `complete` command's request: one option per Completions parameter, or a JSON request (a file or
stdin) that the options then override. Values go to the API as given, so a bad one gets the API's own
CompletionError; options left out are left out of the request (the API's defaults apply)."""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import CompletionError

# (option, request key, value parser, help); every option defaults to absent.
NUMERIC = [
    ("--max-tokens", "max_tokens", "tokens to generate per choice (default 16; null: up to the context's end)"),
    ("--temperature", "temperature", "0..2 (default 1; 0 is greedy)"),
    ("--top-p", "top_p", "nucleus mass, (0, 1] (default 1)"),
    ("--n", "n", "choices per prompt (default 1)"),
    ("--best-of", "best_of", "candidates per prompt, the n with the best mean logprob are returned"),
    ("--logprobs", "logprobs", "0..5: logprobs of each token and this many top alternatives"),
    ("--frequency-penalty", "frequency_penalty", "-2..2, scaled by how often a token already occurred"),
    ("--presence-penalty", "presence_penalty", "-2..2, once a token occurred"),
    ("--seed", "seed", "makes sampling reproducible"),
]


def scalar(text: str):
    """A JSON number, true/false or null when the text is one, else the text itself: the API then judges it
    (`--n abc` is the API's "n must be an integer, got 'abc'")."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (int, float, bool)) else text


def add_request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default=argparse.SUPPRESS, help="the prompt (or give it with --prompt)")
    p.add_argument("--prompt", dest="prompts", action="append", default=argparse.SUPPRESS, metavar="TEXT",
                   help="a prompt; repeat for several (the request's prompt becomes a list)")
    p.add_argument("--request", metavar="FILE", default=None,
                   help="a whole request as a JSON object, from FILE or - for stdin; options override its fields")
    for option, key, text in NUMERIC:
        p.add_argument(option, dest=key, type=scalar, default=argparse.SUPPRESS, metavar="X", help=text)
    p.add_argument("--stop", action="append", default=argparse.SUPPRESS, metavar="TEXT",
                   help="a stop string (repeatable, up to 4)")
    p.add_argument("--logit-bias", action="append", default=argparse.SUPPRESS, metavar="ID=BIAS",
                   help="add BIAS (-100..100) to token ID's logit (repeatable)")
    p.add_argument("--echo", action="store_const", const=True, default=argparse.SUPPRESS,
                   help="include the prompt in the text (with --logprobs 0.. and --max-tokens 0: score it)")
    p.add_argument("--suffix", default=argparse.SUPPRESS, metavar="TEXT",
                   help="text after the completion (fill-in-the-middle models only)")
    p.add_argument("--stream", action="store_const", const=True, default=argparse.SUPPRESS,
                   help="stream the response (with --json: one JSON chunk per line)")
    p.add_argument("--include-usage", action="store_const", const=True, default=argparse.SUPPRESS,
                   help="with --stream: a last chunk with the token counts (stream_options.include_usage)")
    p.add_argument("--user", default=argparse.SUPPRESS, metavar="ID", help="accepted and ignored, as by OpenAI")


def _logit_bias(items: list[str]) -> dict:
    out = {}
    for item in items:
        token, sep, bias = item.partition("=")
        if not sep or not token.strip():
            raise CompletionError(f"--logit-bias takes ID=BIAS (a token id and a number), got {item!r}",
                                  param="logit_bias", code="invalid_value")
        out[token.strip()] = scalar(bias.strip())
    return out


def _read_request(source: str) -> dict:
    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    except OSError as e:
        raise CompletionError(f"cannot read {source}: {e.strerror or e}", param="request") from None
    try:
        request = json.loads(text)
    except ValueError as e:
        raise CompletionError(f"{'stdin' if source == '-' else source} is not valid JSON: {e}",
                              param="request") from None
    if not isinstance(request, dict):
        raise CompletionError("the request must be a JSON object", param="request")
    return request


def request_from_args(args: argparse.Namespace) -> dict:
    """The Completions request the options describe (without `model`: --model picks what to load)."""
    request = _read_request(args.request) if args.request else {}
    given = vars(args)
    prompts = ([given["prompt"]] if "prompt" in given else []) + given.get("prompts", [])
    if prompts:
        request["prompt"] = prompts[0] if len(prompts) == 1 else prompts
    for _, key, _ in NUMERIC:
        if key in given:
            request[key] = given[key]
    for key in ("stop", "echo", "suffix", "stream", "user"):
        if key in given:
            request[key] = given[key]
    if "logit_bias" in given:
        request["logit_bias"] = _logit_bias(given["logit_bias"])
    if "include_usage" in given:
        request["stream_options"] = {"include_usage": True}
    return request
