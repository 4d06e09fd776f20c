"""The request, parsed once into a frozen, validated object (SPEC.md parameter table).

Invalid input is rejected with CompletionError naming the parameter, the value and the allowed range;
nothing is coerced (no clamping of temperature, no silent replacement of top_p).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import CompletionError

PARAMETERS = frozenset({
    "model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "n",
    "presence_penalty", "seed", "stop", "stream", "stream_options", "suffix", "temperature", "top_p", "user",
})
INT64_MIN, INT64_MAX = -(2 ** 63), 2 ** 63 - 1


@dataclass(frozen=True)
class CompletionParams:
    model: str | None
    prompts: tuple[str | tuple[int, ...], ...]  # each a string or a token list, in request order
    best_of: int
    echo: bool
    frequency_penalty: float
    logit_bias: tuple[tuple[int, float], ...]  # (token id, bias), sorted by id
    logprobs: int | None
    max_tokens: int | None
    n: int
    presence_penalty: float
    seed: int | None
    stop: tuple[str, ...]
    stream: bool
    include_usage: bool
    suffix: str | None
    temperature: float
    top_p: float
    user: str | None

    @property
    def candidates(self) -> int:
        """Sequences generated per prompt (best_of, which is n unless asked otherwise)."""
        return self.best_of

    @property
    def needs_logprobs(self) -> int:
        """Top-k to compute per step: logprobs when asked, 0 when only best_of ranking needs them, else -1."""
        if self.logprobs is not None:
            return self.logprobs
        return 0 if self.best_of > self.n else -1


def _bad(param: str, message: str) -> CompletionError:
    return CompletionError(message, param=param, code="invalid_value")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(d: dict, name: str, default, lo: int, hi: int | None, nullable: bool = True):
    v = d.get(name, default)
    if v is None:
        if nullable:
            return default
        raise _bad(name, f"{name} must be an integer, got null")
    if not _is_int(v):
        raise _bad(name, f"{name} must be an integer, got {v!r} ({type(v).__name__})")
    if v < lo or (hi is not None and v > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise _bad(name, f"{name} must be {bound}, got {v}")
    return v


def _number(d: dict, name: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
    v = d.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(name, f"{name} must be a number, got {v!r} ({type(v).__name__})")
    v = float(v)
    if not math.isfinite(v) or v > hi or v < lo or (lo_open and v == lo):
        bound = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
        raise _bad(name, f"{name} must be in {bound}, got {v!r}")
    return v


def _bool(d: dict, name: str) -> bool:
    v = d.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise _bad(name, f"{name} must be a boolean, got {v!r}")
    return v


def _token_list(v, n_vocab: int, where: str) -> tuple[int, ...]:
    if len(v) == 0:
        raise _bad("prompt", f"{where} is an empty token list")
    for t in v:
        if not _is_int(t):
            raise _bad("prompt", f"{where} must hold integer token ids, got {t!r}")
        if not 0 <= t < n_vocab:
            raise _bad("prompt", f"{where} holds token id {t}, outside the vocabulary [0, {n_vocab - 1}]")
    return tuple(v)


def _unicode_text(text: str, where: str, param: str) -> str:
    """Text the model can read: a lone surrogate ("\\ud800", which JSON allows) has no UTF-8 encoding."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _bad(param, f"{where} is not valid Unicode text: lone surrogate at character {e.start}") from None
    return text


def _prompts(v, n_vocab: int) -> tuple[str | tuple[int, ...], ...]:
    if v is None:
        return ("",)
    if isinstance(v, str):
        return (_unicode_text(v, "prompt", "prompt"),)
    if not isinstance(v, (list, tuple)):
        raise _bad("prompt", f"prompt must be a string, a list of strings, a list of token ids or a list of "
                             f"token lists, got {type(v).__name__}")
    if len(v) == 0:
        raise _bad("prompt", "prompt must not be an empty list")
    if all(isinstance(p, str) for p in v):
        for i, p in enumerate(v):
            _unicode_text(p, f"prompt[{i}]", "prompt")
        return tuple(v)
    if all(_is_int(t) for t in v):
        return (_token_list(v, n_vocab, "prompt"),)
    if all(isinstance(p, (list, tuple)) for p in v):
        return tuple(_token_list(p, n_vocab, f"prompt[{i}]") for i, p in enumerate(v))
    raise _bad("prompt", "prompt must be a string, a list of strings, a list of token ids or a list of token "
                         "lists (not a mixture)")


def _stop(v) -> tuple[str, ...]:
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, (list, tuple)) or not all(isinstance(s, str) for s in stops):
        raise _bad("stop", f"stop must be a string or a list of 1 to 4 strings, got {v!r}")
    if not 1 <= len(stops) <= 4:
        raise _bad("stop", f"stop must hold 1 to 4 strings, got {len(stops)}")
    if any(s == "" for s in stops):
        raise _bad("stop", "stop strings must not be empty")
    return tuple(stops)


_TOKEN_ID = re.compile(r"[0-9]{1,18}")


def _logit_bias(v, n_vocab: int) -> tuple[tuple[int, float], ...]:
    if v is None:
        return ()
    if not isinstance(v, dict):
        raise _bad("logit_bias", f"logit_bias must be an object mapping token ids to numbers, got {v!r}")
    out = {}
    for key, bias in v.items():
        token = key if _is_int(key) else None
        if isinstance(key, str) and _TOKEN_ID.fullmatch(key):  # not int(): it takes "+5", " 5" and "1_0"
            token = int(key)
        if token is None:
            raise _bad("logit_bias", f"logit_bias key {key!r} is not a token id")
        if not 0 <= token < n_vocab:
            raise _bad("logit_bias", f"logit_bias token id {token} is outside the vocabulary [0, {n_vocab - 1}]")
        if isinstance(bias, bool) or not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise _bad("logit_bias", f"logit_bias value for {key!r} must be a number, got {bias!r}")
        if not -100 <= bias <= 100:
            raise _bad("logit_bias", f"logit_bias value for {key!r} must be in [-100, 100], got {bias!r}")
        out[token] = out.get(token, 0.0) + float(bias)
    return tuple(sorted(out.items()))


def parse_params(request: dict, n_vocab: int) -> CompletionParams:
    """Validate an OpenAI Completions request dict. Raises CompletionError; never touches the model."""
    if not isinstance(request, dict):
        raise _bad(None, "the request must be an object")
    unknown = sorted(set(request) - PARAMETERS)
    if unknown:
        raise CompletionError(f"unknown parameter(s): {', '.join(map(str, unknown))}", param=str(unknown[0]),
                              code="unknown_parameter")
    model = request.get("model")
    if model is not None and not isinstance(model, str):
        raise _bad("model", f"model must be a string, got {model!r}")
    n = _int(request, "n", 1, 1, 128)
    best_of = _int(request, "best_of", None, 1, 20)
    if best_of is None:
        best_of = n
    elif best_of < n:
        raise _bad("best_of", f"best_of must be >= n ({n}), got {best_of}")
    stream = _bool(request, "stream")
    if stream and best_of > n:
        raise _bad("best_of", f"best_of ({best_of}) > n ({n}) cannot be streamed")
    stream_options = request.get("stream_options")
    include_usage = False
    if stream_options is not None:
        if not stream:
            raise _bad("stream_options", "stream_options is only allowed with stream=true")
        if not isinstance(stream_options, dict) or set(stream_options) - {"include_usage"}:
            raise _bad("stream_options", f"stream_options must be {{'include_usage': bool}}, got {stream_options!r}")
        include_usage = _bool(stream_options, "include_usage")
    echo = _bool(request, "echo")
    if "max_tokens" in request and request["max_tokens"] is None:
        max_tokens = None  # up to the end of the context
    else:
        max_tokens = _int(request, "max_tokens", 16, 0, None)
    if max_tokens == 0 and not echo:
        raise _bad("max_tokens", "max_tokens must be >= 1 (0 is allowed only with echo=true, to score a prompt)")
    suffix = request.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise _bad("suffix", f"suffix must be a string or null, got {suffix!r}")
    if suffix is not None:
        _unicode_text(suffix, "suffix", "suffix")
    seed = request.get("seed")
    if seed is not None and (not _is_int(seed) or not INT64_MIN <= seed <= INT64_MAX):
        raise _bad("seed", f"seed must be an integer in [{INT64_MIN}, {INT64_MAX}] or null, got {seed!r}")
    user = request.get("user")
    if user is not None and not isinstance(user, str):
        raise _bad("user", f"user must be a string, got {user!r}")
    return CompletionParams(
        model=model,
        prompts=_prompts(request.get("prompt"), n_vocab),
        best_of=best_of,
        echo=echo,
        frequency_penalty=_number(request, "frequency_penalty", 0.0, -2.0, 2.0),
        logit_bias=_logit_bias(request.get("logit_bias"), n_vocab),
        logprobs=_int(request, "logprobs", None, 0, 5),
        max_tokens=max_tokens,
        n=n,
        presence_penalty=_number(request, "presence_penalty", 0.0, -2.0, 2.0),
        seed=seed,
        stop=_stop(request.get("stop")),
        stream=stream,
        include_usage=include_usage,
        suffix=suffix,
        temperature=_number(request, "temperature", 1.0, 0.0, 2.0),
        top_p=_number(request, "top_p", 1.0, 0.0, 1.0, lo_open=True),
        user=user,
    )
