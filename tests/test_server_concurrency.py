"""Many clients at once over HTTP: 8 concurrent streams with fixed seeds get exactly the bytes they get alone;
a client that disconnects (mid-stream or before the first byte) has its request cancelled and its sequences
freed; a slow reader does not stall other streams; bounded mixed load (slow) loses and duplicates nothing."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import assert_no_sequences
from .server_process import check_stream, inprocess, server, sse_events, without_ids  # noqa: F401 (fixtures)


def stream_events(base_url: str, request: dict) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=300) as c:
        with c.stream("POST", "/v1/completions", json={**request, "stream": True}) as r:
            assert r.status_code == 200, r.read()
            return sse_events(r)


def normalized(events: list[str]) -> list:
    """The stream without what differs between two runs of one request (id, created); [DONE] kept."""
    return [e if e == "[DONE]" else without_ids(e) for e in events]


def test_eight_concurrent_streams_get_what_each_gets_alone(server):
    requests = [dict(prompt=p, max_tokens=8, temperature=0.9, top_p=0.95, seed=100 + i, logprobs=1)
                for i, p in enumerate(["Once upon a time", "The capital of France is", "def fibonacci(n):",
                                       "1, 2, 3,", "In a galaxy far", "My favourite food is", "The weather today",
                                       "Dear Sir or Madam,"])]
    alone = [stream_events(server.base_url, r) for r in requests]
    start = threading.Barrier(len(requests))

    def together(r):
        start.wait()
        return stream_events(server.base_url, r)
    with ThreadPoolExecutor(len(requests)) as pool:
        concurrent = list(pool.map(together, requests))
    for a, c in zip(alone, concurrent):
        assert a[-1] == "[DONE]" and len(a) > 2
        assert normalized(c) == normalized(a)
        ids = {json.loads(e)["id"] for e in c[:-1]}
        assert len(ids) == 1  # one response id per stream


def test_disconnect_after_three_chunks_frees_the_sequences(server):
    before = server.metrics()["sampling_engine_generation_tokens_total"]
    with httpx.Client(base_url=server.base_url, timeout=300) as c:
        with c.stream("POST", "/v1/completions", json={"prompt": "Count to a thousand: 1, 2, 3,", "max_tokens": 1000,
                                                      "stream": True, "seed": 1}) as r:
            got = []
            for line in r.iter_lines():
                if line.startswith("data: "):
                    got.append(line)
                if len(got) == 3:
                    break
    # the connection is closed: the request leaves the engine within a step
    after = server.wait_idle(timeout=60)
    assert after["sampling_engine_requests_running"] == 0 and after["sampling_engine_slots_busy"] == 0
    assert after["sampling_engine_generation_tokens_total"] - before < 500, "the request was not cancelled"
    server.wait_for_log(r"POST /v1/completions 499 stream")
    request = {"prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}
    r1 = httpx.post(server.url("/v1/completions"), json=request, timeout=300).json()
    r2 = httpx.post(server.url("/v1/completions"), json=request, timeout=300).json()
    assert r1["choices"] == r2["choices"] and r1["usage"]["completion_tokens"] == 6


def test_disconnect_before_the_first_byte_cancels(server):
    before = server.metrics()["sampling_engine_generation_tokens_total"]
    n = len(server.lines)
    for stream in (False, True):
        # ~1,500 prompt tokens that no slot has cached (a cached prefix would send the first byte at once), so
        # even a stream's first chunk takes longer than the client waits; then it gives up and disconnects
        prompt = f"{stream} " + " ".join(f"w{i}" for i in range(400))
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(server.url("/v1/completions"), timeout=httpx.Timeout(300, read=0.3),
                       json={"prompt": prompt, "max_tokens": 500, "stream": stream, "seed": 2})
    after = server.wait_idle(timeout=60)
    assert after["sampling_engine_slots_busy"] == 0
    assert after["sampling_engine_generation_tokens_total"] - before < 1000
    server.wait_for_log(r"POST /v1/completions 499 json", since=n)


def test_disconnect_leaves_no_sequence_in_the_kv_cache(inprocess, engine):
    for closing_after in (3, 1):
        with httpx.Client(base_url=inprocess, timeout=300) as c:
            with c.stream("POST", "/v1/completions", json={"prompt": "Once upon a time", "max_tokens": 1000,
                                                          "n": 2, "stream": True, "seed": 3}) as r:
                got = 0
                for line in r.iter_lines():
                    got += line.startswith("data: ")
                    if got == closing_after:
                        break
        assert_no_sequences(engine)
    request = dict(prompt="Once upon a time", max_tokens=5, seed=3)
    r = httpx.post(inprocess + "/v1/completions", json=request, timeout=300).json()
    assert without_ids(r) == without_ids(engine.create_completion(**request))
    assert_no_sequences(engine)


def test_a_slow_reader_does_not_stall_other_streams(server):
    with httpx.Client(base_url=server.base_url, timeout=300) as slow:
        with slow.stream("POST", "/v1/completions", json={"prompt": "Once upon a time", "max_tokens": 48,
                                                         "stream": True, "seed": 4, "logprobs": 5}) as r:
            lines = r.iter_lines()
            first = next(l for l in lines if l.startswith("data: "))  # then it stops reading for a while
            other = stream_events(server.base_url, {"prompt": "The weather today", "max_tokens": 8, "seed": 5})
            assert other[-1] == "[DONE]"
            rest = [l for l in lines if l.startswith("data: ")]
    assert rest[-1] == "data: [DONE]"
    chunks = [json.loads(l[len("data: "):]) for l in [first] + rest[:-1]]
    assert sum(len(c["choices"][0]["logprobs"]["tokens"]) for c in chunks) <= 48
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.slow
def test_bounded_load_sixteen_clients_ten_mixed_requests(server, engine):
    """16 clients x 10 requests, mixed (streamed or not, n=2, logprobs, echo scoring, stop), small max_tokens:
    no errors, no lost or duplicated chunk, every stream ends with [DONE]. Bounded: 160 requests, then done."""
    ban = {str(t): -100 for t in engine.model.eog_tokens}  # every choice generates exactly max_tokens
    prompts = ["Once upon a time", "The capital of France is", "1, 2, 3,", "def main():", "Hello"]

    def make(client: int, j: int) -> dict:
        kind, seed, prompt = (client + j) % 5, client * 100 + j, prompts[(client * 7 + j) % len(prompts)]
        if kind == 0:
            return dict(prompt=prompt, max_tokens=4, seed=seed)
        if kind == 1:
            return dict(prompt=prompt, max_tokens=4, seed=seed, stream=True, logprobs=0, logit_bias=ban,
                        stream_options={"include_usage": True})
        if kind == 2:
            return dict(prompt=prompt, max_tokens=3, n=2, seed=seed, stream=True, logprobs=0, logit_bias=ban,
                        stream_options={"include_usage": True})
        if kind == 3:
            return dict(prompt=prompt, max_tokens=0, echo=True, logprobs=1)
        return dict(prompt=prompt, max_tokens=4, seed=seed, stream=True, stop=[","])

    def client(c: int) -> int:
        done = 0
        with httpx.Client(base_url=server.base_url, timeout=120) as http:
            for j in range(10):
                request = make(c, j)
                if request.get("stream"):
                    with http.stream("POST", "/v1/completions", json=request) as r:
                        assert r.status_code == 200, r.read()
                        check_stream(request, sse_events(r))
                else:
                    r = http.post("/v1/completions", json=request)
                    assert r.status_code == 200, r.text
                    body = r.json()
                    assert len(body["choices"]) == 1 and body["choices"][0]["finish_reason"]
                done += 1
        return done

    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(client, range(16))) == 160
    assert time.monotonic() - t0 < 600
    m = server.wait_idle()
    assert m["sampling_engine_slots_busy"] == 0 and m["sampling_engine_requests_queued"] == 0
