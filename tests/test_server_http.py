"""The HTTP layer with raw requests (httpx): every error in SPEC.md's shape and status (never a 500 for client
input), API key, body limit, 503 + Retry-After, CORS, /health, /metrics, /v1/models, the tokenizer routes, the
request log line, and graceful shutdown on SIGTERM/SIGINT (in-flight stream finishes, exit 0)."""
from __future__ import annotations

import json
import re
import signal
import threading
import time

import httpx
import pytest

from .server_process import ServerProcess, http, server, sse_events  # noqa: F401 (http, server: fixtures)

KEY = "sekret-key-123"
ORIGIN = "http://app.example.test"


@pytest.fixture(scope="module")
def strict():
    """API key, a small body limit, one slot and a queue of one, CORS for one origin, prompts logged."""
    s = ServerProcess("--n-ctx", "512", "--slots", "1", "--max-queue", "1", "--api-key", KEY,
                      "--max-body-bytes", "2000", "--cors-origin", ORIGIN, "--log-prompts")
    yield s
    assert s.stop() == 0


def assert_error(r: httpx.Response, status: int, param=None, code=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"]
    assert body["error"]["param"] == param, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


# ---- errors: SPEC.md's shape for everything -----------------------------------------------------------------

@pytest.mark.parametrize("content, headers, status, param, code", [
    (b'{"prompt": "x", ', {"content-type": "application/json"}, 400, None, "invalid_json"),
    (b"", {"content-type": "application/json"}, 400, None, "invalid_json"),
    (b"\xff\xfe{}", {"content-type": "application/json"}, 400, None, "invalid_json"),
    (b'[1, 2]', {"content-type": "application/json"}, 400, None, "invalid_json"),
    (b'"just a string"', {"content-type": "application/json"}, 400, None, "invalid_json"),
    (b'{"prompt": "x"}', {"content-type": "text/plain"}, 415, None, "unsupported_media_type"),
    (b'prompt=x', {"content-type": "application/x-www-form-urlencoded"}, 415, None, "unsupported_media_type"),
    (b'{"prompt": "x", "max_tokens": "3"}', {"content-type": "application/json"}, 400, "max_tokens", None),
    (b'{"prompt": "x", "temperature": NaN}', {"content-type": "application/json"}, 400, "temperature", None),
    (b'{"prompt": "x", "top_p": Infinity}', {"content-type": "application/json"}, 400, "top_p", None),
    (b'{"prompt": "x", "n": true}', {"content-type": "application/json"}, 400, "n", None),
    (b'{"prompt": "\\ud800 lone surrogate"}', {"content-type": "application/json"}, 400, "prompt", "invalid_value"),
    (b'{"prompt": "x", "stop": ["\\udfff"]}', {"content-type": "application/json"}, 400, "stop", "invalid_value"),
    (b'{"prompt": "x", "self": 1}', {"content-type": "application/json"}, 400, "self", "unknown_parameter"),
    (b'{"prompt": "x", "bogus": 1}', {"content-type": "application/json"}, 400, "bogus", "unknown_parameter"),
    (b'{"prompt": [], "max_tokens": 1}', {"content-type": "application/json"}, 400, "prompt", None),
    (b'{"prompt": [[]], "max_tokens": 1}', {"content-type": "application/json"}, 400, "prompt", None),
    (b'{"prompt": [-1], "max_tokens": 1}', {"content-type": "application/json"}, 400, "prompt", None),
    (b'{"prompt": "x", "logit_bias": {"a": 1}}', {"content-type": "application/json"}, 400, "logit_bias", None),
    (b'{"prompt": "x", "model": 5}', {"content-type": "application/json"}, 400, "model", None),
    (b'{"prompt": "x", "model": "gpt-4"}', {"content-type": "application/json"}, 404, "model", "model_not_found"),
    (b'{"prompt": "x", "stream": true, "stream_options": {"x": 1}}', {"content-type": "application/json"}, 400,
     "stream_options", None),
    (b'{"prompt": "x", "stream": true, "max_tokens": -1}', {"content-type": "application/json"}, 400,
     "max_tokens", None),
    (b'[' * 100000 + b']' * 100000, {"content-type": "application/json"}, 400, None, "invalid_json"),
])
def test_bad_bodies_are_400s_in_spec_shape(http, content, headers, status, param, code):
    assert_error(http.post("/v1/completions", content=content, headers=headers), status, param, code)


def test_json_without_content_type_is_accepted(http):
    r = http.post("/v1/completions", content=b'{"prompt": "Hi", "max_tokens": 1, "temperature": 0}')
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 1
    r = http.post("/v1/completions", content=b'{"prompt": "Hi", "max_tokens": 1}',
                  headers={"content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200


def test_unknown_routes_and_wrong_methods(http):
    assert_error(http.get("/v1/nothing-here"), 404, code="not_found")
    assert_error(http.post("/v1/chat/completions", json={"messages": []}), 404, code="not_found")
    assert_error(http.get("/"), 404, code="not_found")
    r = http.get("/v1/completions")
    assert_error(r, 405, code="method_not_allowed")
    assert r.headers["allow"] == "POST"
    assert_error(http.delete("/v1/models"), 405, code="method_not_allowed")
    assert_error(http.put("/tokenize", json={}), 405, code="method_not_allowed")
    assert_error(http.post("/health"), 405, code="method_not_allowed")


def test_streamed_errors_before_the_first_byte_are_json(http):
    r = http.post("/v1/completions", json={"prompt": "x", "stream": True, "temperature": -1})
    assert_error(r, 400, "temperature")
    with http.stream("POST", "/v1/completions", json={"prompt": "x", "stream": True, "best_of": 3, "n": 1}) as r:
        r.read()
        assert_error(r, 400, "best_of")


# ---- routes -----------------------------------------------------------------------------------------------

def test_health_models_and_cors_off(http, server):
    r = http.get("/health", headers={"origin": ORIGIN})
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.json()["batch_invariant"] is True and r.json()["numerics"] == "exact"  # the project's build
    assert "access-control-allow-origin" not in r.headers  # CORS is off unless --cors-origin
    pre = http.options("/v1/completions", headers={"origin": ORIGIN, "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    models = http.get("/v1/models").json()
    assert models["object"] == "list"
    (card,) = models["data"]
    assert card["id"] == server.model_id and card["object"] == "model" and card["owned_by"] == "sampling-engine"
    assert card["context_length"] == card["max_model_len"] == 2048
    assert card["metadata"] == {k: r.json()[k] for k in ("batch_invariant", "numerics", "system_fingerprint")}


def test_tokenizer_routes_round_trip(http, engine):
    info = http.get("/tokenizer_info").json()
    model = engine.model
    assert info["eos_token"] and info["model_max_length"] == 2048
    for special in (info["eos_token"], info["bos_token"]):  # special-token text is that one token
        assert http.post("/tokenize", json={"prompt": special, "add_special_tokens": False}).json()["tokens"] == \
            model.tokenize(special, add_bos=False, special=True)
        assert len(http.post("/tokenize", json={"prompt": special, "add_special_tokens": False}).json()["tokens"]) \
            == 1
    eos_ids = http.post("/tokenize", json={"prompt": info["eos_token"], "add_special_tokens": False}).json()
    assert eos_ids["tokens"] == [model.eos] and eos_ids["count"] == 1 and eos_ids["max_model_len"] == 2048
    text = "Hello, wörld! 1 + 1 = 2 " + info["eos_token"] + " après"
    tok = http.post("/tokenize", json={"prompt": text, "add_special_tokens": False,
                                       "return_token_strs": True}).json()
    assert tok["tokens"] == model.tokenize(text, add_bos=False, special=True)
    assert len(tok["token_strs"]) == tok["count"] == len(tok["tokens"])
    assert http.post("/detokenize", json={"tokens": tok["tokens"]}).json() == {"prompt": text}
    with_special = http.post("/tokenize", json={"prompt": "abc"}).json()["tokens"]  # add_special_tokens: default
    assert with_special == model.tokenize("abc")
    assert_error(http.post("/tokenize", json={"prompt": 5}), 400, "prompt")
    assert_error(http.post("/tokenize", json={"prompt": "x", "add_special_tokens": "yes"}), 400,
                 "add_special_tokens")
    assert_error(http.post("/tokenize", json={"prompt": "x", "whatever": 1}), 400, "whatever")
    assert_error(http.post("/tokenize", json={"prompt": "x", "model": "other"}), 404, "model", "model_not_found")
    assert_error(http.post("/detokenize", json={"tokens": [model.n_vocab]}), 400, "tokens")
    assert_error(http.post("/detokenize", json={"tokens": "1 2"}), 400, "tokens")
    assert_error(http.post("/detokenize", content=b"{", headers={"content-type": "application/json"}), 400,
                 code="invalid_json")


def test_metrics_count_requests_tokens_and_slots(http, server):
    before = server.metrics()
    r = http.post("/v1/completions", json={"prompt": "One, two,", "max_tokens": 3, "temperature": 0})
    usage = r.json()["usage"]
    with http.stream("POST", "/v1/completions", json={"prompt": "Three, four,", "max_tokens": 2, "stream": True,
                                                       "temperature": 0}) as s:
        assert sse_events(s)[-1] == "[DONE]"
    after = server.wait_idle()
    assert after["sampling_engine_slots"] == 8 and after["sampling_engine_slots_busy"] == 0
    assert after["sampling_engine_requests_running"] == 0 and after["sampling_engine_requests_queued"] == 0
    gained = lambda name: after.get(name, 0) - before.get(name, 0)  # noqa: E731
    assert gained("sampling_engine_generation_tokens_total") >= 5
    # the streamed request's prompt tokens are counted too (the server asks the engine for usage internally)
    assert gained("sampling_engine_prompt_tokens_total") == usage["prompt_tokens"] + len(
        http.post("/tokenize", json={"prompt": "Three, four,"}).json()["tokens"])
    assert gained('sampling_engine_http_requests_total{route="/v1/completions",status="200"}') == 2
    assert gained("sampling_engine_time_to_first_token_seconds_count") == 1
    assert any(k.startswith('sampling_engine_slot_cached_tokens{slot="') for k in after)
    text = httpx.get(server.url("/metrics")).headers["content-type"]
    assert text.startswith("text/plain")


def test_one_log_line_per_request_without_prompt_text(http, server):
    n = len(server.lines)
    secret = "Zanzibar-unique-prompt-text"
    r = http.post("/v1/completions", json={"prompt": secret, "max_tokens": 2, "temperature": 0})
    with http.stream("POST", "/v1/completions", json={"prompt": secret, "max_tokens": 2, "stream": True}) as s:
        sse_events(s)
    # a stream's line is written once its response has fully closed, which may be after the client read [DONE]
    server.wait_for_log(r"POST /v1/completions 200 stream", since=n)
    http.post("/v1/completions", json={"prompt": secret, "temperature": 9})
    server.wait_for_log(r"POST /v1/completions 400", since=n)
    lines = [l for l in server.log_since(n) if "/v1/completions" in l]
    assert len(lines) == 3, lines
    rid = r.json()["id"]
    assert re.search(rf"{rid} POST /v1/completions 200 json prompt_tokens=\d+ completion_tokens=2 ttft=- "
                     r"total=\d+\.\d+s finish=length", lines[0]), lines[0]
    assert re.search(r"cmpl-\w+ POST /v1/completions 200 stream prompt_tokens=\d+ completion_tokens=\d+ "
                     r"ttft=\d+\.\d+s total=\d+\.\d+s finish=\w+", lines[1]), lines[1]
    assert "error=invalid_value" in lines[2]
    assert not any(secret in l for l in server.log_since(n))


# ---- the strict server: API key, body limit, full queue, CORS, logged prompts -------------------------------

def test_api_key_required_and_compared(strict):
    good = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=strict.base_url, timeout=300) as c:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY},
                        {"authorization": f"Basic {KEY}"}, {"authorization": f"Bearer {KEY}x"}):
            for method, path in (("POST", "/v1/completions"), ("GET", "/v1/models"), ("GET", "/tokenizer_info"),
                                 ("POST", "/tokenize"), ("POST", "/detokenize"), ("GET", "/metrics"),
                                 ("GET", "/openapi.json")):
                r = c.request(method, path, json={"prompt": "x"}, headers=headers)
                assert_error(r, 401, code="invalid_api_key")
                assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/health").status_code == 200  # health stays open for probes
        assert c.get("/metrics", headers=good).status_code == 200
        assert c.get("/v1/models", headers=good).status_code == 200
        r = c.post("/v1/completions", json={"prompt": "Hi", "max_tokens": 1}, headers=good)
        assert r.status_code == 200, r.text


def test_body_over_the_limit_is_413(strict):
    good = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=strict.base_url, timeout=300) as c:
        r = c.post("/v1/completions", json={"prompt": "x" * 3000, "max_tokens": 1}, headers=good)
        assert_error(r, 413, code="request_too_large")

        def chunked():  # no Content-Length: counted while reading
            for _ in range(10):
                yield b" " * 500
        r = c.post("/v1/completions", content=chunked(), headers={**good, "content-type": "application/json"})
        assert_error(r, 413, code="request_too_large")
        assert_error(c.post("/tokenize", json={"prompt": "y" * 3000}, headers=good), 413, code="request_too_large")


def test_cors_for_the_given_origin_only(strict):
    with httpx.Client(base_url=strict.base_url, timeout=300) as c:
        pre = c.options("/v1/completions", headers={"origin": ORIGIN, "access-control-request-method": "POST",
                                                    "access-control-request-headers": "authorization,content-type"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == ORIGIN
        r = c.get("/health", headers={"origin": ORIGIN})
        assert r.headers["access-control-allow-origin"] == ORIGIN
        r = c.get("/health", headers={"origin": "http://evil.example.test"})
        assert "access-control-allow-origin" not in r.headers


def test_full_queue_is_503_with_retry_after(strict):
    good = {"authorization": f"Bearer {KEY}"}
    n = len(strict.lines)
    with httpx.Client(base_url=strict.base_url, timeout=300, headers=good) as a, \
            httpx.Client(base_url=strict.base_url, timeout=300, headers=good) as b, \
            httpx.Client(base_url=strict.base_url, timeout=300, headers=good) as c:
        with a.stream("POST", "/v1/completions", json={"prompt": "Count: 1, 2,", "max_tokens": 400,
                                                      "stream": True}) as running:
            lines = running.iter_lines()
            assert next(l for l in lines if l.startswith("data: "))  # it holds the only slot now
            waiting = threading.Thread(target=lambda: b.post("/v1/completions",
                                                             json={"prompt": "Queued", "max_tokens": 1}))
            waiting.start()
            deadline = time.monotonic() + 60
            while strict.metrics()["sampling_engine_requests_queued"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            r = c.post("/v1/completions", json={"prompt": "One too many", "max_tokens": 1})
            assert_error(r, 503, code="engine_overloaded")
            assert r.headers["retry-after"] == "1"
            r = c.post("/v1/completions", json={"prompt": "One too many", "max_tokens": 1, "stream": True})
            assert_error(r, 503, code="engine_overloaded")
        # leaving the `with` closed the running stream: it is cancelled and the queued request runs
        waiting.join(120)
        assert not waiting.is_alive()
    assert strict.wait_idle()["sampling_engine_slots_busy"] == 0
    strict.wait_for_log(r"POST /v1/completions 499 stream", since=n)  # the stream we left was cancelled
    log = "".join(strict.log_since(n))
    assert "Count: 1, 2," in log  # --log-prompts
    assert " 503 " in log and " 499 " in log


# ---- graceful shutdown -------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_signal_finishes_in_flight_stream_and_exits_0(sig):
    s = ServerProcess("--n-ctx", "256", "--slots", "2", "--shutdown-timeout", "60")
    try:
        with httpx.Client(base_url=s.base_url, timeout=300) as c:
            with c.stream("POST", "/v1/completions", json={"prompt": "Once upon a time", "max_tokens": 12,
                                                          "stream": True, "seed": 1}) as r:
                lines = r.iter_lines()
                first = next(l for l in lines if l.startswith("data: "))
                s.proc.send_signal(sig)
                s.wait_for_log("shutting down")
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:  # the listener closes within uvicorn's next tick
                    try:
                        assert httpx.get(s.url("/health"), timeout=5).status_code == 503  # shutting down
                    except httpx.TransportError:
                        break
                    time.sleep(0.05)
                else:
                    raise AssertionError("still accepting connections 30 s after the signal")
                rest = [l[len("data: "):] for l in lines if l.startswith("data: ")]
        assert rest[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["text"] for e in [first[len("data: "):]] + rest[:-1])
        assert text
        assert s.proc.wait(120) == 0
        log = "".join(s.lines)
        assert "stopped" in log and "Traceback" not in log
    finally:
        s.stop()


# ---- without the server extra --------------------------------------------------------------------------------

def test_the_cli_works_without_the_server_extra_and_serve_says_what_to_install():
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('fastapi', 'uvicorn', 'sse_starlette', 'prometheus_client', 'starlette'):\n"
            "    sys.modules[m] = None  # not installed\n"
            "from engine.commands.main import build_parser, main\n"
            "args = build_parser().parse_args(['complete', 'Hello', '--max-tokens', '1'])\n"
            "assert args.func.__module__ == 'engine.commands.complete'\n"
            "sys.exit(main(['serve', '--port', '0']))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "pip install 'sampling-engine[server]'" in r.stderr and "Traceback" not in r.stderr
