"""Security defaults: the API key guards every route but /health (compared in constant time; 401 in OpenAI's
shape), 127.0.0.1 unless told otherwise (and a warning when bound elsewhere without a key), no prompt or
completion text in the log without --log-prompts, CORS off, request size limits on, and error messages that
quote at most a bounded part of what the client sent."""
from __future__ import annotations

import hashlib

import httpx
import pytest
from starlette.testclient import TestClient

from engine.commands.main import build_parser
from engine.server import app as app_module
from engine.server.app import create_app
from engine.server.config import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPTS, DEFAULT_MAX_SEQUENCES, ServerConfig
from engine.server.run import exposure_warning

from .conftest import AUTH, KEY

OPENAI_401 = {"type": "invalid_request_error", "param": None, "code": "invalid_api_key"}


def _routes(tight) -> list[tuple[str, str]]:
    with tight.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    routes = [(method.upper(), path.replace("{model_id}", "some-model")) for path, ops in paths.items()
              for method in ops]
    return routes + [("GET", "/openapi.json")]


def test_every_route_but_health_needs_the_key(tight):
    routes = _routes(tight)
    assert len(routes) == 9
    with httpx.Client(base_url=tight.base_url, timeout=60) as c:
        for method, path in routes:
            for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Bearer {KEY[:-1]}"},
                            {"authorization": KEY}, {"authorization": f"Token {KEY}"}):
                r = c.request(method, path, headers=headers, json={"prompt": "x"} if method == "POST" else None)
                if path == "/health":
                    assert r.status_code == 200
                    continue
                assert r.status_code == 401, (method, path, headers, r.text)
                err = r.json()["error"]
                assert {k: err[k] for k in OPENAI_401} == OPENAI_401 and "API key" in err["message"]
                assert r.headers["www-authenticate"] == "Bearer"
            r = c.request(method, path, headers=AUTH, json={"prompt": "x", "max_tokens": 1} if method == "POST"
                          else None)
            assert r.status_code != 401, (method, path)


def test_the_key_is_compared_in_constant_time(engine, monkeypatch):
    """hmac.compare_digest on two SHA-256 digests: equal lengths whatever was sent, so the time a wrong
    guess takes says nothing about the key, not even its length."""
    seen = []
    real = app_module.hmac.compare_digest

    def spy(a, b):
        seen.append((len(a), len(b)))
        return real(a, b)
    monkeypatch.setattr(app_module.hmac, "compare_digest", spy)
    with TestClient(create_app(engine, ServerConfig(api_key=KEY))) as c:
        for guess in ("", "x", KEY[:-1], KEY + "x", "y" * 5000, KEY):
            c.get("/v1/models", headers={"authorization": f"Bearer {guess}"})
        assert c.get("/v1/models", headers=AUTH).status_code == 200
    assert seen and set(seen) == {(32, 32)}
    assert hashlib.sha256(KEY.encode()).digest_size == 32


def test_loopback_by_default_and_a_warning_when_exposed_without_a_key(tight):
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"
    assert tight.base_url.startswith("http://127.0.0.1:")
    for address in ("127.0.0.1", "127.0.0.2", "::1"):
        assert exposure_warning(address, None) is None
    for address in ("0.0.0.0", "::", "192.0.2.10", "2001:db8::1", "fe80::1%eth0"):
        warning = exposure_warning(address, None)
        assert warning and address in warning and "--api-key" in warning
        assert exposure_warning(address, KEY) is None
    assert not any("without an API key" in line for line in tight.process.lines)


def test_no_prompt_or_completion_text_in_the_log(tight):
    secret = "Quetzalcoatl-7d1e secret prompt"
    n = len(tight.process.lines)
    with tight.client() as c:
        done = c.post("/v1/completions", json={"prompt": secret, "max_tokens": 12, "seed": 1, "temperature": 0})
        completion = done.json()["choices"][0]["text"]
        with c.stream("POST", "/v1/completions", json={"prompt": secret, "max_tokens": 4, "stream": True}) as r:
            r.read()
        c.post("/v1/completions", json={"prompt": secret, "stop": [secret] * 5})  # a 400 that names nothing
        c.post("/v1/completions", json={"prompt": secret, "model": secret})  # a 404 whose message quotes it
        c.post("/tokenize", json={"prompt": secret})
        c.post("/detokenize", json={"tokens": c.post("/tokenize", json={"prompt": secret}).json()["tokens"]})
    tight.process.wait_for_log(r"POST /detokenize 200", since=n)
    log = "".join(tight.process.log_since(n))
    assert len(completion.strip()) >= 8, completion  # long enough to be recognised if it leaked
    assert secret not in log and "Quetzalcoatl" not in log and completion.strip() not in log, log


def test_cors_is_off_by_default(tight):
    origin = "http://evil.example.test"
    with tight.client() as c:
        pre = c.options("/v1/completions", headers={"origin": origin, "access-control-request-method": "POST"})
        assert "access-control-allow-origin" not in pre.headers
        r = c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}, headers={"origin": origin})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_request_size_limits_are_on_by_default():
    args = build_parser().parse_args(["serve"])
    assert (args.max_body_bytes, args.max_prompts, args.max_sequences) == \
        (DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PROMPTS, DEFAULT_MAX_SEQUENCES) == (8 * 1024 * 1024, 256, 256)
    config = ServerConfig()
    assert (config.max_body_bytes, config.max_prompts, config.max_sequences) == (8 * 1024 * 1024, 256, 256)


@pytest.mark.parametrize("path", ["/v1/" + "p" * 8_000, "/v1/models/" + "m" * 8_000])
def test_errors_and_log_lines_quote_a_bounded_part_of_the_input(tight, path):
    n = len(tight.process.lines)
    with tight.client() as c:
        r = c.get(path)
    assert r.status_code == 404
    err = r.json()["error"]
    assert len(err["message"]) <= 600 and "characters left out" in err["message"]
    assert err["param"] is None or len(err["param"]) <= 101
    line = tight.process.wait_for_log(r"GET /v1/\S* 404", since=n)
    assert len(line) < 400
