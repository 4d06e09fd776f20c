"""`serve --ray --replicas 2`: every replica answers a seeded request with the single-process server's bytes;
requests sharing a long prefix go to the replica that holds it; a replica killed mid-stream ends its clients'
responses cleanly (an SSE error event or a 503, never a hang or a traceback), Serve restarts it, and later
requests succeed."""
from __future__ import annotations

import json
import os
import re
import signal
import time

import httpx
import pytest

from ..server_process import inprocess  # noqa: F401 (a fixture)
from .serve_process import REPLICA_HEADER, ray_server  # noqa: F401 (ray_server: a fixture)

VOLATILE = re.compile(rb'"id":"[^"]*"|"created":\d+')


def stable(raw: bytes) -> bytes:
    """A response body with its per-request id and timestamp blanked: everything else must match byte for byte."""
    return VOLATILE.sub(b"#", raw)


def raw_post(base_url: str, request: dict, headers: dict | None = None) -> tuple[bytes, httpx.Headers]:
    with httpx.Client(base_url=base_url, timeout=300) as c:
        r = c.post("/v1/completions", json=request, headers=headers or {})
        assert r.status_code == 200, r.text
        return r.content, r.headers


SEEDED = [dict(prompt="Once upon a time", max_tokens=12, temperature=0.9, top_p=0.95, seed=1234, logprobs=2),
          dict(prompt=["The capital of France is", "1, 2, 3,"], max_tokens=8, n=2, best_of=3, seed=9,
               temperature=1.1, frequency_penalty=0.4, echo=True, logprobs=1),
          dict(prompt="def fib(n):", max_tokens=10, seed=5, stream=True, logprobs=1,
               stream_options={"include_usage": True})]


@pytest.mark.parametrize("request_", SEEDED, ids=["plain", "n2-echo", "stream"])
def test_every_replica_gives_the_single_servers_bytes(ray_server, inprocess, request_):  # noqa: F811
    single, _ = raw_post(inprocess, request_)
    for rid in ray_server.replica_ids():
        got, headers = raw_post(ray_server.base_url, request_, {REPLICA_HEADER: rid})
        assert headers[REPLICA_HEADER] == rid
        assert stable(got) == stable(single)


def words(seed: int, n: int) -> str:
    """n distinct-looking words no other test sends (a prefix no slot holds yet)."""
    return " ".join(f"w{seed}x{(i * 7919 + seed) % 10007}" for i in range(n))


def test_a_shared_300_token_prefix_goes_to_the_replica_that_holds_it(ray_server):  # noqa: F811
    ray_server.wait_idle()
    for trial in range(3):  # by chance (power of two choices) 3 pairs would all match 1 time in 8
        prefix = words(1000 + trial, 100)
        first = httpx.post(ray_server.url("/v1/completions"), timeout=300,
                           json={"prompt": prefix + " Question A?", "max_tokens": 1})
        assert first.status_code == 200, first.text
        assert first.json()["usage"]["prompt_tokens"] >= 300
        rid = first.headers[REPLICA_HEADER]
        before = ray_server.replica_metrics(rid)
        ray_server.wait_idle()
        second = httpx.post(ray_server.url("/v1/completions"), timeout=300,
                            json={"prompt": prefix + " Question B?", "max_tokens": 1})
        assert second.headers[REPLICA_HEADER] == rid, f"trial {trial}: the prefix went to another replica"
        after = ray_server.replica_metrics(rid)
        hits = after["sampling_engine_prefix_cache_hits_total"] - before["sampling_engine_prefix_cache_hits_total"]
        assert hits >= 300  # its slot held the prefix: not evaluated again


def replica_pid(rid: str) -> int:
    """The process of the replica named `rid` (Ray's actor table names each Serve replica by its id)."""
    from ray._private import state

    for actor in state.actors().values():
        if rid in (actor.get("Name") or "") and actor["State"] == "ALIVE":
            return actor["Pid"]
    raise AssertionError(f"no live actor for replica {rid}")


def test_a_replica_killed_mid_stream_ends_the_stream_cleanly_and_is_replaced(ray_server):  # noqa: F811
    victim = ray_server.replica_ids()[0]
    ban = {"2": -100}  # SmolLM2's end-of-text: the stream would run for 1,000 tokens
    events = []
    t0 = time.monotonic()
    with httpx.Client(base_url=ray_server.base_url, timeout=60) as c:
        with c.stream("POST", "/v1/completions", headers={REPLICA_HEADER: victim},
                      json={"prompt": "Count: 1, 2, 3,", "max_tokens": 1000, "stream": True, "seed": 1,
                            "logit_bias": ban}) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if not line.startswith("data: "):
                    continue
                events.append(line[len("data: "):])
                if len(events) == 3:
                    os.kill(replica_pid(victim), signal.SIGKILL)
    assert time.monotonic() - t0 < 60
    assert events[-1] != "[DONE]" and len(events) < 1000
    last = json.loads(events[-1])
    assert last["error"]["code"] == "replica_unavailable" and last["error"]["type"] == "server_error"

    # the other replica keeps answering meanwhile, and Serve starts a replacement
    deadline = time.monotonic() + 240
    ray_server.forget_replicas()
    while True:
        ids = ray_server.replica_ids(timeout=30)
        if len(ids) == 2 and victim not in ids:
            break
        assert time.monotonic() < deadline, f"no replacement replica (replicas seen: {ids})"
        ray_server.forget_replicas()
        time.sleep(2)
    for _ in range(6):
        r = httpx.post(ray_server.url("/v1/completions"), json={"prompt": "Hello", "max_tokens": 2}, timeout=300)
        assert r.status_code == 200, r.text


def test_a_pin_to_a_replica_that_is_not_running_is_ignored(ray_server):  # noqa: F811
    """A request that names a replica that does not run (any more) goes to a live one: the pin is a hint."""
    r = httpx.post(ray_server.url("/v1/completions"), json={"prompt": "Hello", "max_tokens": 1},
                   headers={REPLICA_HEADER: "no-such-replica"}, timeout=300)
    assert r.status_code == 200 and r.headers[REPLICA_HEADER] in ray_server.replica_ids()


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_cancels_its_request_on_the_replica(ray_server, stream):  # noqa: F811
    """Through Serve's proxy, the ingress and the handle call: the engine request ends within a step."""
    before = ray_server.metrics()["sampling_engine_generation_tokens_total"]
    body = {"prompt": f"{stream} Count to a thousand: 1, 2, 3,", "max_tokens": 1000, "stream": stream, "seed": 1,
            "logit_bias": {"2": -100}}
    if stream:
        with httpx.Client(base_url=ray_server.base_url, timeout=300) as c:
            with c.stream("POST", "/v1/completions", json=body) as r:
                got: list[str] = []
                for line in r.iter_lines():
                    got += [line] if line.startswith("data: ") else []
                    if len(got) == 3:
                        break
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(ray_server.url("/v1/completions"), json=body, timeout=httpx.Timeout(300, read=1.0))
    time.sleep(1)
    after = ray_server.wait_idle(timeout=60)
    assert after["sampling_engine_requests_running"] == 0 and after["sampling_engine_slots_busy"] == 0
    assert after["sampling_engine_generation_tokens_total"] - before < 500, "the request was not cancelled"
