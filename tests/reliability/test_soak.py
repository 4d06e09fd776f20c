"""Soak (slow; bounded: 1,400 requests, then it stops): 1,000 sequential mixed requests, then 16 clients x 25
mixed requests at once, on the shared server. Mixed: streamed and not, n and best_of, several prompts, token
prompts, echo scoring, stop strings, a bad request, and clients that leave mid-stream. Every seeded request
must give the same bytes each time it is sent, alone or among 15 others (so no chunk is lost, duplicated or
altered); zero 5xx; every stream ends with [DONE]; RSS grows < 5 % after warm-up; all KV slots free at the end.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..server_process import check_stream, server, sse_events, without_ids  # noqa: F401 (server: a fixture)
from .conftest import TALLY

PROMPTS = ["Once upon a time", "The capital of France is", "def fibonacci(n):", "1, 2, 3,", "Dear Sir or Madam,"]
SEQUENTIAL, CLIENTS, PER_CLIENT, WARM_UP = 1000, 16, 25, 100


def kinds(ban: dict) -> list[dict]:
    """The mix; each entry is completed with a prompt (and a seed where it samples)."""
    usage = {"include_usage": True}
    return [
        {"max_tokens": 4},
        {"max_tokens": 4, "stream": True, "logprobs": 0, "logit_bias": ban, "stream_options": usage},
        {"max_tokens": 3, "n": 2, "stream": True, "logprobs": 0, "logit_bias": ban, "stream_options": usage},
        {"max_tokens": 3, "n": 2, "best_of": 3, "logprobs": 1},
        {"max_tokens": 0, "echo": True, "logprobs": 1},
        {"max_tokens": 6, "stream": True, "stop": [",", " the"]},
        {"max_tokens": 3, "prompt_as_tokens": True},
        {"max_tokens": 2, "two_prompts": True, "temperature": 0.7, "top_p": 0.9},
        {"max_tokens": 200, "stream": True, "leave_after": 1, "logit_bias": ban},  # a client that goes away
        {"max_tokens": 2, "temperature": 7},  # a 400
    ]


def make(kind: dict, i: int, tokenize) -> dict:
    prompt = PROMPTS[i % len(PROMPTS)]
    request = {k: v for k, v in kind.items() if k not in ("prompt_as_tokens", "two_prompts", "leave_after")}
    request["prompt"] = tokenize(prompt) if kind.get("prompt_as_tokens") else (
        [prompt, PROMPTS[(i + 1) % len(PROMPTS)]] if kind.get("two_prompts") else prompt)
    request["seed"] = 1000 + i % 7
    return request


class Soak:
    def __init__(self, server, engine):
        self.server = server
        self.kinds = kinds({str(t): -100 for t in engine.model.eog_tokens})
        self.tokenize = lambda text: engine.model.tokenize(text)
        self.references: dict = {}
        self.served = self.errors = 0
        self._lock = threading.Lock()  # 16 client threads count

    def one(self, http: httpx.Client, i: int) -> None:
        kind = self.kinds[i % len(self.kinds)]
        request = make(kind, i // len(self.kinds), self.tokenize)
        if request.get("stream"):
            with http.stream("POST", "/v1/completions", json=request) as r:
                self._status(r.status_code, 200)
                if kind.get("leave_after"):
                    lines = r.iter_lines()
                    assert next(line for line in lines if line.startswith("data: "))
                    return  # leaving the `with` closes the connection mid-stream
                events = sse_events(r)
            check_stream(request, events)
            got = [e if e == "[DONE]" else without_ids(e) for e in events]
        else:
            r = http.post("/v1/completions", json=request)
            expected = 400 if request.get("temperature", 1) > 2 else 200
            self._status(r.status_code, expected)
            got = without_ids(r.json()) if expected == 200 else r.json()
        key = repr(request)
        reference = self.references.setdefault(key, got)
        assert got == reference, f"request {key} answered differently"

    def _status(self, status: int, expected: int) -> None:
        with self._lock:
            self.served += 1
            self.errors += status >= 500
        assert status == expected, status


@pytest.mark.slow
def test_soak_sequential_then_concurrent(server, engine):
    soak = Soak(server, engine)
    t0 = time.monotonic()
    with httpx.Client(base_url=server.base_url, timeout=300) as http:
        for i in range(SEQUENTIAL):
            soak.one(http, i)
            if i + 1 == WARM_UP:
                server.wait_idle()
                rss_warm = server.rss_bytes()
    sequential_s = time.monotonic() - t0

    def client(c: int) -> int:
        with httpx.Client(base_url=server.base_url, timeout=300) as http:
            for j in range(PER_CLIENT):
                soak.one(http, c * 7 + j)  # a different mix per client; the references are shared
        return PER_CLIENT
    with ThreadPoolExecutor(CLIENTS) as pool:
        assert sum(pool.map(client, range(CLIENTS))) == CLIENTS * PER_CLIENT
    m = server.wait_idle()
    rss_end = server.rss_bytes()
    total_s = time.monotonic() - t0
    TALLY.update(soak_requests=soak.served, soak_5xx=soak.errors, soak_rss_warm_mb=rss_warm // 2 ** 20,
                 soak_rss_end_mb=rss_end // 2 ** 20, soak_seconds=int(total_s),
                 soak_sequential_seconds=int(sequential_s))
    assert soak.served == SEQUENTIAL + CLIENTS * PER_CLIENT and soak.errors == 0
    assert (m["sampling_engine_slots_busy"], m["sampling_engine_requests_running"],
            m["sampling_engine_requests_queued"]) == (0, 0, 0)
    assert rss_end < rss_warm * 1.05, f"RSS {rss_warm / 2**20:.0f} MB after warm-up, {rss_end / 2**20:.0f} MB at end"
