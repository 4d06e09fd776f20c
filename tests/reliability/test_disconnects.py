"""Faults from the client's side, on the app over the test session's own engine (so the KV cache itself is
checked): a disconnect at every point of a stream, from before the first byte to between `[DONE]` and the end
of the response, and a request cancelled while it waits in the queue. After each: no KV sequence left, no
thread left, and the next request is correct (the canary's bytes)."""
from __future__ import annotations

import json
import socket
import threading
import time

from ..conftest import assert_no_sequences
from ..server_process import inprocess  # noqa: F401 (a fixture)
from .conftest import CANARY, TALLY, canary_bytes

STREAM = {"prompt": "Once upon a time, in a small village,", "max_tokens": 6, "n": 2, "seed": 5, "logprobs": 1,
          "stream": True, "stream_options": {"include_usage": True}}


def _request_bytes(base_url: str, body: dict) -> tuple[tuple[str, int], bytes]:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    payload = json.dumps(body).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    return (host, int(port)), head + payload


def read_raw(base_url: str, body: dict, limit: int | None = None) -> bytes:
    """Send the request on a raw socket and read `limit` bytes of the response (all when None), then close
    the connection abruptly (RST when unread bytes remain)."""
    address, request = _request_bytes(base_url, body)
    with socket.create_connection(address, timeout=120) as s:
        s.sendall(request)
        got = b""
        while limit is None or len(got) < limit:
            chunk = s.recv(65536 if limit is None else min(65536, limit - len(got)))
            if not chunk:
                break
            got += chunk
            if limit is None and got.endswith(b"0\r\n\r\n"):  # the end of a chunked body
                break
        return got


def cut_points(raw: bytes) -> dict[str, int]:
    """Byte offsets of a reference response where a client may vanish, named."""
    headers_end = raw.index(b"\r\n\r\n") + 4
    points = {"before the first byte": 0, "inside the headers": headers_end // 2, "after the headers": headers_end}
    start = headers_end
    k = 0
    while (p := raw.find(b"data: ", start)) >= 0:
        end = raw.index(b"\n\n", p)
        event = raw[p:end]
        name = "[DONE]" if event == b"data: [DONE]" else (
            "usage chunk" if b'"choices":[]' in event else f"chunk {k}")
        points[f"mid {name}"] = (p + end) // 2
        points[f"after {name}"] = end + 2
        k += 1
        start = end
    return points


def test_a_disconnect_at_every_point_of_a_stream_leaves_nothing(inprocess, engine):
    reference = read_raw(inprocess, STREAM)
    assert reference.startswith(b"HTTP/1.1 200") and b"data: [DONE]" in reference
    assert b'"choices":[]' in reference  # the usage chunk is there to be cut
    points = cut_points(reference)
    assert len(points) > 20 and "after [DONE]" in points and "mid usage chunk" in points
    canary = canary_bytes(inprocess)
    threads = threading.active_count()
    for name, offset in points.items():
        got = read_raw(inprocess, STREAM, limit=offset)
        assert len(got) == offset, name
        assert_no_sequences(engine)
        assert threading.active_count() == threads, f"a thread was left after a disconnect {name}"
        TALLY["faults"] += 1
    assert canary_bytes(inprocess) == canary
    # the stream is unchanged by all of it: every byte but the id and the created time
    again = read_raw(inprocess, STREAM)
    assert len(again) == len(reference) and again.count(b"data: ") == reference.count(b"data: ")


def _queued(engine) -> int:
    return engine.stats()["queued"]


def test_a_request_cancelled_while_queued_leaves_nothing(inprocess, engine):
    canary = canary_bytes(inprocess)
    threads = threading.active_count()
    for stream in (False, True):
        ban = {str(t): -100 for t in engine.model.eog_tokens}  # it cannot end early and free a slot
        hold_address, hold = _request_bytes(inprocess, {"prompt": "Count: 1, 2,", "max_tokens": 2000, "n": 4,
                                                        "stream": True, "seed": 1, "logit_bias": ban})
        with socket.create_connection(hold_address, timeout=120) as holder:  # all 4 slots, for a long while
            holder.sendall(hold)
            assert holder.recv(100).startswith(b"HTTP/1.1 200")
            address, waiting = _request_bytes(inprocess, {**CANARY, "stream": stream})
            with socket.create_connection(address, timeout=120) as w:
                w.sendall(waiting)
                deadline = time.monotonic() + 60
                while _queued(engine) != 1:
                    assert time.monotonic() < deadline, "the request never queued"
                    time.sleep(0.01)
            # the waiting client is gone: its request leaves the queue without ever taking a slot
            deadline = time.monotonic() + 60
            while _queued(engine) != 0:
                assert time.monotonic() < deadline, "the cancelled request stayed queued"
                time.sleep(0.01)
            assert engine.stats()["running"] == 1
        assert_no_sequences(engine)
        assert threading.active_count() == threads
        TALLY["faults"] += 1
    assert canary_bytes(inprocess) == canary
