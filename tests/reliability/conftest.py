"""The reliability suite's shared parts: a tightly limited server with an API key (fuzzing and hostile
bodies aim at it, so no accepted request can ask for much work), the canary request, and the tally of what
was tried (written to build/reliability/counts.json and shown at the end of the run; the README's
"Reliability" section quotes it)."""
from __future__ import annotations

import json
import re
from collections import Counter

import httpx
import pytest

from ..server_process import REPO, ServerProcess, server  # noqa: F401 (server: a fixture)

TALLY: Counter = Counter()
COUNTS_FILE = REPO / "build" / "reliability" / "counts.json"

KEY = "reliability-key-0123456789"
AUTH = {"authorization": f"Bearer {KEY}"}
# 2 sequences of 64 context cells at most: any request the fuzzers get accepted finishes in about a second.
TIGHT_ARGS = ("--n-ctx", "64", "--slots", "4", "--max-queue", "16", "--max-prompts", "2", "--max-sequences", "2",
              "--api-key", KEY)
CANARY = {"prompt": "The quick brown fox", "max_tokens": 8, "temperature": 0.8, "seed": 11, "logprobs": 2}


def canary_bytes(base_url: str, headers: dict | None = None) -> bytes:
    """The canary's response bytes, with what differs between two runs of one request (id, created) blanked."""
    r = httpx.post(base_url + "/v1/completions", json=CANARY, headers=headers or {}, timeout=300)
    assert r.status_code == 200, r.text
    return re.sub(rb'"created":\d+', b'"created":0', re.sub(rb'"id":"cmpl-\w+"', b'"id":""', r.content))


class Watched:
    """A server under test with what it looked like at the start: its canary bytes and its thread count."""

    def __init__(self, process: ServerProcess, headers: dict):
        self.process, self.headers, self.base_url = process, headers, process.base_url
        self.canary = canary_bytes(self.base_url, headers)  # also warms the sampler up (its JIT compile)
        self.threads = process.threads()

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=300, **kwargs)

    def assert_healthy(self) -> None:
        """Nothing left running or queued, every slot free, no thread left behind, the canary's bytes."""
        m = self.process.wait_idle()
        assert (m["sampling_engine_requests_running"], m["sampling_engine_requests_queued"],
                m["sampling_engine_slots_busy"]) == (0, 0, 0), m
        assert self.process.threads() == self.threads, "a thread was left behind"
        assert canary_bytes(self.base_url, self.headers) == self.canary


@pytest.fixture(scope="session")
def tight():
    s = Watched(ServerProcess(*TIGHT_ARGS), AUTH)
    yield s
    assert s.process.stop() == 0


@pytest.fixture(scope="module")
def shared(server):
    """The suite's shared server (default request limits, no key), watched."""
    return Watched(server, {})


def pytest_terminal_summary(terminalreporter):
    if not TALLY:
        return
    COUNTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(COUNTS_FILE.read_text()) if COUNTS_FILE.exists() else {}
    COUNTS_FILE.write_text(json.dumps({**previous, **TALLY}, indent=1, sort_keys=True) + "\n")
    terminalreporter.write_line("reliability: " + ", ".join(f"{k}={v}" for k, v in sorted(TALLY.items())))
