"""Hostile request bodies: each gets a 4xx in SPEC.md's shape, quickly, with a bounded message, and the server
answers the canary request with the same bytes after every batch (no state leaked, no thread left).

Named cases go to the shared server (its request limits are the defaults: 8 MiB bodies, 256 prompts,
256 sequences per request); hypothesis's raw bytes and JSON-like values go to the tight server (conftest),
where a body that happens to be valid costs little.
"""
from __future__ import annotations

import json
import time

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.params import PARAMETERS

from .conftest import TALLY

JSON = {"content-type": "application/json"}
MESSAGE_MAX = 600  # errors.py: a 360-character head and a 120-character tail of a long message
# Generous: a refusal does no model work and takes well under a second on an idle machine, but these runs
# share two cores with other work at a lower priority; the bound catches a hang, the README states real times.
QUICK_S = 60.0


def _big_int_text(digits: int) -> str:
    return "1" + "0" * (digits - 1)


def named_cases() -> list[tuple[str, bytes, int, str | None, str | None]]:
    """(what, body, status, param, code) for every hostile shape the issue names, and a few neighbours."""
    d = lambda obj: json.dumps(obj).encode()  # noqa: E731
    return [
        ("invalid UTF-8", b'{"prompt": "caf\xe9"}', 400, None, "invalid_json"),
        ("invalid UTF-8 bytes only", b"\xff\xfe\xfd", 400, None, "invalid_json"),
        ("UTF-16 body", '{"prompt": "x"}'.encode("utf-16"), 400, None, "invalid_json"),
        ("nesting 100,000 deep", b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, None,
         "invalid_json"),
        ("nesting 500 deep", b'{"prompt": ' + b"[" * 500 + b"]" * 500 + b"}", 400, "prompt", "invalid_value"),
        ("nesting in logit_bias", b'{"logit_bias": {"1": ' + b'{"a": ' * 50 + b"1" + b"}" * 51 + b"}", 400,
         "logit_bias", "invalid_value"),
        ("integer of 5,000 digits", ('{"n": %s}' % _big_int_text(5000)).encode(), 400, None, "invalid_json"),
        ("seed of 4,000 digits", ('{"prompt": "x", "seed": %s}' % _big_int_text(4000)).encode(), 400, "seed",
         "invalid_value"),
        ("max_tokens 1e400", b'{"prompt": "x", "max_tokens": 1e400}', 400, "max_tokens", "invalid_value"),
        ("n 1e308", b'{"prompt": "x", "n": 1e308}', 400, "n", "invalid_value"),
        ("logprobs -1e400", b'{"prompt": "x", "logprobs": -1e400}', 400, "logprobs", "invalid_value"),
        ("temperature NaN", b'{"prompt": "x", "temperature": NaN}', 400, "temperature", "invalid_value"),
        ("top_p Infinity", b'{"prompt": "x", "top_p": Infinity}', 400, "top_p", "invalid_value"),
        ("presence_penalty -Infinity", b'{"prompt": "x", "presence_penalty": -Infinity}', 400, "presence_penalty",
         "invalid_value"),
        ("max_tokens NaN", b'{"prompt": "x", "max_tokens": NaN}', 400, "max_tokens", "invalid_value"),
        ("logit_bias NaN", b'{"prompt": "x", "logit_bias": {"5": NaN}}', 400, "logit_bias", "invalid_value"),
        ("prompt [NaN]", b'{"prompt": [NaN]}', 400, "prompt", "invalid_value"),
        ("10 MB prompt", d({"prompt": "x" * 10_000_000}), 413, None, "request_too_large"),
        ("10 MB unknown key", d({"k" * 10_000_000: 1}), 413, None, "request_too_large"),
        ("7 MB model name", d({"prompt": "x", "model": "m" * 7_000_000}), 404, "model", "model_not_found"),
        ("7 MB stop string", d({"prompt": "x", "stop": ["s" * 7_000_000] * 5}), 413, None, "request_too_large"),
        ("7 MB stop list", d({"prompt": "x", "stop": ["s"] * 1_000_000}), 400, "stop", "invalid_value"),
        ("100k-entry logit_bias", d({"prompt": "x", "logit_bias": {str(i): 1 for i in range(100_000)}}), 400,
         "logit_bias", "invalid_value"),
        ("100k-entry logit_bias of junk keys", d({"prompt": "x", "logit_bias": {f"t{i}": 1 for i in range(100_000)}}),
         400, "logit_bias", "invalid_value"),
        ("100k-token prompt (ids)", d({"prompt": [7] * 100_000, "max_tokens": 1}), 400, "max_tokens",
         "context_length_exceeded"),
        ("100k-token prompt (text)", d({"prompt": " a" * 100_000, "max_tokens": 1}), 400, "max_tokens",
         "context_length_exceeded"),
        ("100k-token prompt, max_tokens null", d({"prompt": [7] * 100_000, "max_tokens": None}), 400, "prompt",
         "context_length_exceeded"),
        ("100k token ids out of vocabulary", d({"prompt": list(range(100_000)), "max_tokens": 1}), 400, "prompt",
         "invalid_value"),
        ("duplicate key", b'{"prompt": "a", "prompt": "b"}', 400, None, "duplicate_key"),
        ("duplicate key, nested", b'{"prompt": "a", "logit_bias": {"1": 5, "1": -5}}', 400, None, "duplicate_key"),
        ("duplicate key, different values", b'{"max_tokens": 1, "max_tokens": 100000}', 400, None,
         "duplicate_key"),
        ("10,000 string prompts", d({"prompt": ["x"] * 10_000, "max_tokens": 1}), 400, "prompt", "too_many_prompts"),
        ("10,000 token-list prompts", d({"prompt": [[1]] * 10_000, "max_tokens": 1}), 400, "prompt",
         "too_many_prompts"),
        ("3 prompts x n=128", d({"prompt": ["a", "b", "c"], "n": 128, "max_tokens": 1}), 400, "n",
         "too_many_sequences"),
        ("20 prompts x best_of=20", d({"prompt": ["a"] * 20, "best_of": 20, "max_tokens": 1}), 400, "best_of",
         "too_many_sequences"),
        ("10,000 unknown keys", d({f"key{i}": i for i in range(10_000)}), 400, "key0", "unknown_parameter"),
        ("a JSON array", d([{"prompt": "x"}] * 1000), 400, None, "invalid_json"),
        ("lone surrogate key", b'{"\\ud800": 1}', 400, "\\ud800", "invalid_value"),  # param: the key, escaped
        ("lone surrogate in logit_bias key", b'{"logit_bias": {"\\udc00": 1}}', 400, "logit_bias", "invalid_value"),
        ("NUL bytes", b'{"prompt": "a\x00b"}', 400, None, "invalid_json"),
        ("BOM then JSON", b'\xef\xbb\xbf{"prompt": "x"}', 400, None, "invalid_json"),
        ("form body", b"prompt=x", 415, None, "unsupported_media_type"),
    ]


def assert_spec_error(r: httpx.Response, status: int, param, code) -> dict:
    assert r.status_code == status, r.text[:2000]
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(r.json()) == {"error"} and set(err) == {"message", "type", "param", "code"}, err
    assert (err["param"], err["code"]) == (param, code), err
    assert 0 < len(err["message"]) <= MESSAGE_MAX, len(err["message"])
    assert err["param"] is None or len(err["param"]) <= 101
    return err


def test_named_hostile_bodies_get_quick_4xx_in_spec_shape(shared):
    cases = named_cases()
    with shared.client() as c:
        for what, body, status, param, code in cases:
            headers = JSON if status != 415 else {"content-type": "application/x-www-form-urlencoded"}
            t0 = time.monotonic()
            r = c.post("/v1/completions", content=body, headers=headers)
            elapsed = time.monotonic() - t0
            assert_spec_error(r, status, param, code)
            assert elapsed < QUICK_S, f"{what}: {elapsed:.1f} s"
            TALLY["hostile_slowest_ms"] = max(TALLY["hostile_slowest_ms"], int(elapsed * 1000))
    TALLY["hostile_bodies"] += len(cases)
    shared.assert_healthy()


def test_the_tokenizer_routes_take_hostile_bodies_too(shared):
    cases = [(b'{"prompt": "x", "prompt": "y"}', 400, None, "duplicate_key"),
             (b'{"prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, None, "invalid_json"),
             (json.dumps({"prompt": "x" * 9_000_000}).encode(), 413, None, "request_too_large"),
             (b'{"tokens": [NaN]}', 400, "tokens", "invalid_value"),
             (('{"tokens": [%s]}' % _big_int_text(4000)).encode(), 400, "tokens", "invalid_value"),
             (b'{"tokens": [1, 2], "tokens": [3]}', 400, None, "duplicate_key")]
    with shared.client() as c:
        for i, (body, status, param, code) in enumerate(cases):
            route = "/detokenize" if b"tokens" in body else "/tokenize"
            assert_spec_error(c.post(route, content=body, headers=JSON), status, param, code)
    TALLY["hostile_bodies"] += len(cases)
    shared.assert_healthy()


# ---- hypothesis: random bytes and random JSON-like values ----------------------------------------------------

ODD_STRINGS = st.sampled_from(["\ud800", "x\udfffy", "\x00", "\u202e", "<|endoftext|>", "\ufffd" * 3, "é" * 40])
ODD_NUMBERS = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -0.0, 5e-324, 2 ** 63,
                               -(2 ** 63) - 1, 10 ** 100, 128, 129, 20, 21, 64, 65, -1])
SCALARS = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | ODD_NUMBERS
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | ODD_STRINGS)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=6)
                      | st.dictionaries(st.text(max_size=8) | ODD_STRINGS, inner, max_size=4), max_leaves=12)
KEYS = st.sampled_from(sorted(PARAMETERS)) | st.text(max_size=12) | ODD_STRINGS
BODIES = st.dictionaries(KEYS, VALUES, max_size=6)
ACCEPTED = (200, 400, 404, 413, 415)


def _check_answer(r: httpx.Response, streamed: bool) -> None:
    assert r.status_code in ACCEPTED, (r.status_code, r.text[:2000])
    if r.status_code != 200:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"} and 0 < len(err["message"]) <= MESSAGE_MAX, err
    elif streamed:
        events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and events.count("[DONE]") == 1, r.text[-500:]
    else:
        assert r.json()["object"] == "text_completion"


def _post(c: httpx.Client, content: bytes, streamed: bool) -> None:
    t0 = time.monotonic()
    r = c.post("/v1/completions", content=content, headers=JSON)
    _check_answer(r, streamed)
    if r.status_code != 200:  # a body that happens to be valid may generate (a few tokens on this server)
        assert time.monotonic() - t0 < QUICK_S
    TALLY["hostile_bodies"] += 1


FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))


def test_random_json_values_never_get_a_5xx(tight):
    with tight.client() as c:
        @FUZZ
        @given(body=BODIES)
        def run(body):
            content = json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")
            _post(c, content, body.get("stream") is True)
        run()
    tight.assert_healthy()


def test_random_bytes_and_broken_json_never_get_a_5xx(tight):
    valid = json.dumps({"prompt": "Hello", "max_tokens": 2, "logit_bias": {"11": 1}}).encode()

    with tight.client() as c:
        @FUZZ
        @given(data=st.binary(max_size=300) | st.builds(lambda at, junk: valid[:at] + junk + valid[at:],
                                                          st.integers(0, len(valid)), st.binary(min_size=1,
                                                                                                max_size=8)))
        def run(data):
            _post(c, data, False)
        run()
    tight.assert_healthy()
