"""A real `sampling-engine serve` in a subprocess on 127.0.0.1 (a free port), for the server tests.

`shared_server()` is one server for every server test module (started on first use, stopped at exit);
tests that need other options or that stop the server start their own ServerProcess.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

REPO = Path(__file__).resolve().parents[1]
SERVING = re.compile(r"serving (\S+) at (http://\S+)/v1")
SHARED_ARGS = ("--n-ctx", "2048", "--slots", "8", "--max-queue", "64")


class ServerProcess:
    def __init__(self, *args: str, start_timeout: float = 300.0):
        env = {k: v for k, v in os.environ.items() if k != "SAMPLING_ENGINE_API_KEY"}
        self.args = args
        key = args[args.index("--api-key") + 1] if "--api-key" in args else None
        self.headers = {"authorization": f"Bearer {key}"} if key else {}  # for /metrics behind a key
        self.proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", "0", *args], cwd=REPO,
                                     env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.base_url = ""
        self.model_id = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + start_timeout
        while not self._ready.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"the server did not start (exit {self.proc.poll()}):\n" + "".join(self.lines))
        for _ in range(100):  # listening once uvicorn started; /health confirms
            try:
                if httpx.get(self.url("/health"), timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            m = SERVING.search(line)
            if m and not self._ready.is_set():
                self.model_id, self.base_url = m.group(1), m.group(2)
                self._ready.set()

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def log_since(self, n: int) -> list[str]:
        return self.lines[n:]

    def wait_for_log(self, pattern: str, since: int = 0, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[since:]:
                if re.search(pattern, line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no log line matching {pattern!r} in:\n" + "".join(self.lines[since:]))

    def metrics(self) -> dict[str, float]:
        """The Prometheus samples, as {'name{labels}': value}."""
        text = httpx.get(self.url("/metrics"), headers=self.headers, timeout=30).text
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def wait_idle(self, timeout: float = 60.0) -> dict[str, float]:
        """Until no request runs or waits and every slot is free (as /metrics reports them)."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            idle = (m["sampling_engine_requests_running"] == 0 and m["sampling_engine_requests_queued"] == 0
                    and m["sampling_engine_slots_busy"] == 0)
            if idle or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return kb * 1024

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(5)
        return rc


_shared: ServerProcess | None = None
_lock = threading.Lock()


def shared_server() -> ServerProcess:
    global _shared
    with _lock:
        if _shared is None or _shared.proc.poll() is not None:
            _shared = ServerProcess(*SHARED_ARGS)
            atexit.register(_shared.stop)
        return _shared


def sse_events(response: httpx.Response) -> list[str]:
    """The `data:` payloads of an SSE response, in order ([DONE] included), read as it streams."""
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(line[len("data: "):])
    return events


def check_stream(request: dict, events: list[str]) -> None:
    """A whole stream: [DONE] once, at the end; each choice finishes once, with nothing after; with a logit_bias
    (that bans the end-of-generation tokens) every generated token arrived exactly once."""
    assert events and events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    n = request.get("n", 1)
    finished, tokens, usage = {}, {i: 0 for i in range(n)}, None
    for ch in chunks:
        if ch.get("usage"):
            usage = ch["usage"]
            assert ch["choices"] == []
        for c in ch["choices"]:
            assert c["index"] not in finished, "a chunk after the choice's last one"
            if c.get("logprobs"):
                tokens[c["index"]] += len(c["logprobs"]["tokens"])
            if c["finish_reason"]:
                finished[c["index"]] = c["finish_reason"]
    assert sorted(finished) == list(range(n))
    if "logit_bias" in request:  # nothing lost, nothing twice: every generated token arrived once
        assert tokens == {i: request["max_tokens"] for i in range(n)}
        assert usage["completion_tokens"] == n * request["max_tokens"]


def without_ids(obj):
    """A response or chunk without what differs between two runs of the same request (id, created)."""
    if isinstance(obj, str):
        obj = json.loads(obj)
    return {k: v for k, v in obj.items() if k not in ("id", "created")}


@pytest.fixture(scope="module")
def server():
    """The shared server (started once per session); import this fixture into a test module to use it."""
    return shared_server()


@pytest.fixture
def inprocess(engine):
    """The app on the test session's own engine, in a uvicorn thread: the KV cache itself can be inspected."""
    from engine.server.app import create_app
    from engine.server.config import ServerConfig
    from engine.server.run import Server, bind

    config = ServerConfig(sse_ping_s=0)  # no keep-alive comments: a stream's bytes are the same on every run
    server = Server(uvicorn.Config(create_app(engine, config), log_level="warning", access_log=False,
                                   lifespan="off"), config)
    sock = bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    host, port = sock.getsockname()[:2]
    yield f"http://{host}:{port}"
    server.should_exit = True
    thread.join(60)
    sock.close()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.base_url, timeout=300) as c:
        yield c
