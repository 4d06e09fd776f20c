"""Load generator with vLLM's serving metrics: our HTTP server against llama-cpp-python's own server
(`python -m llama_cpp.server`) on the same model file and thread count, in the same run, alternating, plus the
bare 8-sequence llama_decode loop (engine/bench/bare.py) as llama.cpp's own limit.

    .venv/bin/python benchmarks/serve_load.py                 # concurrency 1, 4, 8, 16; 128 new tokens
    .venv/bin/python benchmarks/serve_load.py --quick         # 32 new tokens, one request per client
    .venv/bin/python benchmarks/serve_load.py --concurrency 1 8 --tokens 64 --requests 16

Every request streams (SSE) a fixed prompt from a small set with 128 new tokens (end-of-generation banned
through logit_bias, so every request generates exactly that many), temperature 0.8, top_p 0.95, a seed. Per
server and concurrency C: C clients issue `--requests` requests (default 2*C) back to back. Reported as vLLM's
benchmark_serving does: TTFT (time to the first chunk), TPOT ((e2e - TTFT) / (tokens - 1)), ITL (gaps between
chunks), end-to-end latency (mean, p50, p99), output tokens/s over the level's wall time, and failures.

llama-cpp-python's server runs with `--interrupt_requests False` (by default a new request interrupts the
running stream: at C > 1 most requests would fail) and with llama.cpp's weight repacking off like ours. It
needs `pydantic-settings` and `starlette-context` (in the dev extra). Results: benchmarks/results/serve_load.md,
serve_load.json and serve_load.png (the chart needs matplotlib).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
PROMPTS = [
    "Once upon a time, in a small village by the sea,",
    "The history of the printing press begins",
    "Here is a recipe for a simple tomato soup:",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "The three most important ideas in physics are",
    "Dear hiring manager, I am writing to apply for",
    "A short guide to planting trees in autumn:",
    "In the year 2150, the first city on Mars",
]
OURS, LLAMA_CPP, BARE = "ours", "llama-cpp-python server", "bare 8-sequence decode loop"


# ---- servers -------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """A server subprocess; its stderr is drained into `lines` (and scanned for readiness)."""

    def __init__(self, name: str, cmd: list[str], base_url: str | None, ready: str | None):
        self.name, self.base_url, self.lines = name, base_url, []
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self._ready_pattern = re.compile(ready) if ready else None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            m = self._ready_pattern.search(line) if self._ready_pattern else None
            if m:
                if m.groups():
                    self.base_url = m.group(1)
                self._ready.set()

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}):\n" + "".join(self.lines[-30:]))
            if self.base_url and (self._ready_pattern is None or self._ready.is_set()):
                try:
                    if httpx.get(self.base_url + "/v1/models", timeout=5).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not start in {timeout} s:\n" + "".join(self.lines[-30:]))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_ours(model_path: str, threads: int, n_ctx: int, slots: int) -> Served:
    cmd = [sys.executable, "-m", "engine", "serve", "--model", model_path, "--port", "0", "--n-threads", str(threads),
           "--n-ctx", str(n_ctx), "--slots", str(slots), "--max-queue", "256"]
    return Served(OURS, cmd, None, r"serving \S+ at (http://\S+)/v1")


def start_llama_cpp(model_path: str, threads: int, n_ctx: int) -> Served:
    port = free_port()
    cmd = [sys.executable, __file__, "--llama-cpp-server-child", "--model", model_path, "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx),
           "--interrupt_requests", "False", "--verbose", "False"]
    return Served(LLAMA_CPP, cmd, f"http://127.0.0.1:{port}", None)


def llama_cpp_server_child(argv: list[str]) -> None:
    """`python -m llama_cpp.server`, with llama.cpp's weight repacking off (as ours loads the model): `Llama` has
    no option for it, so its default model parameters are wrapped (engine/bench/llama_python.default_repack)."""
    import runpy

    from engine.bench.llama_python import default_repack

    sys.argv = ["llama_cpp.server", *argv]
    with default_repack(False):
        runpy.run_module("llama_cpp.server", run_name="__main__")


# ---- the load ------------------------------------------------------------------------------------------------

@dataclass
class RequestResult:
    ok: bool
    ttft: float = 0.0
    e2e: float = 0.0
    itl: list[float] = field(default_factory=list)
    tokens: int = 0
    error: str = ""

    @property
    def tpot(self) -> float | None:
        return (self.e2e - self.ttft) / (self.tokens - 1) if self.tokens > 1 else None


async def one_request(client: httpx.AsyncClient, url: str, body: dict, expect_tokens: int,
                      usage: bool) -> RequestResult:
    t0 = time.perf_counter()
    stamps, tokens, done = [], 0, False
    try:
        async with client.stream("POST", url, json=body) as r:
            if r.status_code != 200:
                return RequestResult(False, error=f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data.strip() == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                if any(c.get("text") for c in chunk.get("choices") or ()):  # content, as vLLM's client counts it
                    stamps.append(time.perf_counter())
                    if not usage:
                        tokens += 1  # llama-cpp-python: one chunk per token (then one empty closing chunk)
    except (httpx.HTTPError, json.JSONDecodeError) as e:
        return RequestResult(False, error=f"{type(e).__name__}: {e}")
    end = time.perf_counter()
    if not done or not stamps:
        return RequestResult(False, error="stream ended without [DONE]")
    if tokens != expect_tokens:
        return RequestResult(False, error=f"{tokens} tokens, expected {expect_tokens}")
    return RequestResult(True, ttft=stamps[0] - t0, e2e=end - t0,
                         itl=[b - a for a, b in zip(stamps, stamps[1:])], tokens=tokens)


async def run_level(server: Served, concurrency: int, n_requests: int, n_tokens: int,
                    ban: dict) -> tuple[list[RequestResult], float]:
    usage = server.name == OURS
    url = server.base_url + "/v1/completions"
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(n_requests):
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": n_tokens, "stream": True,
                "temperature": 0.8, "top_p": 0.95, "seed": 1000 + i, "logit_bias": ban}
        if usage:
            body["stream_options"] = {"include_usage": True}
        queue.put_nowait(body)
    results: list[RequestResult] = []
    limits = httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800, connect=30), limits=limits) as client:
        async def worker():
            while True:
                try:
                    body = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results.append(await one_request(client, url, body, n_tokens, usage))
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return results, wall


def bare_loop_rate(model, prompt_tokens: list[int], n_tokens: int) -> float:
    from engine.bench.bare import generate

    t0 = time.perf_counter()
    n = generate(model, prompt_tokens, n_tokens, 8)
    return n / (time.perf_counter() - t0)


# ---- report --------------------------------------------------------------------------------------------------

def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(results: list[RequestResult], walls: list[float]) -> dict:
    ok = [r for r in results if r.ok]
    out = {"requests": len(results), "failures": len(results) - len(ok),
           "output_tok_s": sum(r.tokens for r in ok) / sum(walls) if walls else 0.0,
           "errors": sorted({r.error for r in results if not r.ok})[:5]}
    for name, values in (("ttft", [r.ttft for r in ok]), ("tpot", [r.tpot for r in ok if r.tpot is not None]),
                         ("itl", [x for r in ok for x in r.itl]), ("e2e", [r.e2e for r in ok])):
        out[name] = {"mean": statistics.fmean(values) if values else float("nan"), "p50": pct(values, 50),
                     "p99": pct(values, 99)}
    return out


def ms(x: float) -> str:
    return "-" if x != x else f"{x * 1000:.0f}"


def markdown(summary: dict, header: str) -> str:
    lines = [header, "",
             "| server | C | requests | failed | output tok/s | TTFT mean / p50 / p99 ms | TPOT mean / p50 / p99 ms "
             "| ITL mean / p50 / p99 ms | e2e mean / p50 / p99 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in summary["concurrency"]:
        for name in (OURS, LLAMA_CPP):
            s = summary["levels"].get(f"{name}|{c}")
            if s is None:
                continue
            trio = lambda m: " / ".join(ms(s[m][k]) for k in ("mean", "p50", "p99"))  # noqa: E731
            lines.append(f"| {name} | {c} | {s['requests']} | {s['failures']} | {s['output_tok_s']:.1f} | "
                         f"{trio('ttft')} | {trio('tpot')} | {trio('itl')} | {trio('e2e')} |")
    lines += ["", f"{BARE}: {summary['bare_tok_s']:.1f} tok/s (median of {len(summary['bare_runs'])} runs "
                  f"between the levels, {summary['tokens']} tokens per sequence)", ""]
    goals = summary.get("goals")
    if goals:
        lines += ["| at concurrency 8 | measured | goal |", "|---|---|---|",
                  f"| ours / llama-cpp-python server (output tok/s) | {goals['vs_llama_cpp']:.2f}x | >= 1.8x |",
                  f"| ours / bare 8-sequence loop (tok/s) | {goals['vs_bare']:.2f}x | >= 0.85x |"]
    return "\n".join(lines) + "\n"


def write_chart(summary: dict, header: str, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = summary["concurrency"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, marker in ((OURS, "o"), (LLAMA_CPP, "s")):
        levels = [summary["levels"].get(f"{name}|{c}") for c in cs]
        if not any(levels):
            continue
        a.plot(cs, [lv["output_tok_s"] if lv else float("nan") for lv in levels], marker=marker, label=name)
        b.plot(cs, [lv["ttft"]["p99"] if lv else float("nan") for lv in levels], marker=marker, label=name)
    a.axhline(summary["bare_tok_s"], color="grey", linestyle="--", label=BARE)
    a.set(xlabel="concurrency", ylabel="output tokens / s", title="throughput", xticks=cs)
    b.set(xlabel="concurrency", ylabel="seconds", title="p99 time to first token", xticks=cs)
    a.legend(fontsize=8)
    b.legend(fontsize=8)
    fig.suptitle(header, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ---- main ----------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="registry name or .gguf path (default: the default model)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for every contender")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--tokens", type=int, default=128, help="new tokens per request")
    p.add_argument("--requests", type=int, default=None, help="requests per level (default: 2 x concurrency)")
    p.add_argument("--rounds", type=int, default=1, help="rounds over the levels (who goes first alternates)")
    p.add_argument("--slots", type=int, default=8, help="our server's slots")
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--quick", action="store_true", help="32 new tokens, one request per client")
    p.add_argument("--no-llama-cpp", action="store_true", help="only our server and the bare loop")
    p.add_argument("--out", default=str(RESULTS), help="folder for serve_load.{md,json,png}")
    args = p.parse_args(argv)
    if args.quick:
        args.tokens = 32
    per_level = (lambda c: args.requests or (c if args.quick else 2 * c))

    from engine.loader import resolve_model_path

    model_id, path = resolve_model_path(args.model, quiet=True)
    path = str(path)
    import llama_cpp

    llama_ok = not args.no_llama_cpp
    if llama_ok:
        try:
            import llama_cpp.server.app  # noqa: F401  (its extra dependencies)
        except ImportError as e:
            print(f"llama-cpp-python's server is not importable ({e}): pip install pydantic-settings "
                  f"starlette-context sse-starlette fastapi uvicorn; running ours and the bare loop only",
                  file=sys.stderr)
            llama_ok = False

    servers = [start_ours(path, args.threads, args.n_ctx, args.slots)]
    if llama_ok:
        servers.append(start_llama_cpp(path, args.threads, args.n_ctx))
    from engine.model import Model

    bare_model = Model(path, n_ctx=args.n_ctx, n_seq_max=8, n_threads=args.threads)
    try:
        for s in servers:
            s.wait_ready()
        eog = sorted(bare_model.eog_tokens)
        ban = {str(t): -100 for t in eog}
        prompt_tokens = bare_model.tokenize(PROMPTS[0])
        print(f"servers up: {', '.join(f'{s.name} at {s.base_url}' for s in servers)}", file=sys.stderr)
        for s in servers:  # warm-up: one short request each (kernels, caches), not timed
            asyncio.run(run_level(s, 1, 1, 4, ban))
        results: dict[str, list[RequestResult]] = {}
        walls: dict[str, list[float]] = {}
        bare_runs: list[float] = []
        turn = 0
        for rnd in range(args.rounds):
            for c in args.concurrency:
                order = servers if turn % 2 == 0 else servers[::-1]
                turn += 1
                for s in order:
                    key = f"{s.name}|{c}"
                    res, wall = asyncio.run(run_level(s, c, per_level(c), args.tokens, ban))
                    results.setdefault(key, []).extend(res)
                    walls.setdefault(key, []).append(wall)
                    ok = sum(r.tokens for r in res if r.ok)
                    print(f"round {rnd + 1}, C={c:2d}, {s.name}: {ok / wall:.1f} tok/s, "
                          f"{sum(not r.ok for r in res)} failed, {wall:.1f} s", file=sys.stderr)
                bare_runs.append(bare_loop_rate(bare_model, prompt_tokens, args.tokens))
                print(f"  {BARE}: {bare_runs[-1]:.1f} tok/s", file=sys.stderr)
    finally:
        for s in servers:
            s.stop()
        bare_model.close()

    summary = {"model": model_id, "threads": args.threads, "tokens": args.tokens, "concurrency": args.concurrency,
               "rounds": args.rounds, "slots": args.slots, "llama_cpp_python": llama_cpp.__version__,
               "levels": {k: summarize(v, walls[k]) for k, v in results.items()},
               "bare_runs": bare_runs, "bare_tok_s": statistics.median(bare_runs)}
    at8 = summary["levels"].get(f"{OURS}|8"), summary["levels"].get(f"{LLAMA_CPP}|8")
    if at8[0]:
        summary["goals"] = {"vs_bare": at8[0]["output_tok_s"] / summary["bare_tok_s"],
                            "vs_llama_cpp": (at8[0]["output_tok_s"] / at8[1]["output_tok_s"]
                                             if at8[1] and at8[1]["output_tok_s"] else float("nan"))}
    header = (f"model {model_id} | llama-cpp-python {llama_cpp.__version__} | threads {args.threads} | "
              f"our slots {args.slots} | {args.tokens} new tokens per request, streamed | "
              f"{time.strftime('%Y-%m-%d')}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(summary, header)
    (out / "serve_load.md").write_text(table)
    (out / "serve_load.json").write_text(json.dumps(summary, indent=1, default=float))
    drew = write_chart(summary, header, out / "serve_load.png")
    print(table)
    print(f"written: {out / 'serve_load.md'}, serve_load.json" + (", serve_load.png" if drew else
                                                                   " (no chart: matplotlib not installed)"),
          file=sys.stderr)
    return summary


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--llama-cpp-server-child":
        llama_cpp_server_child(sys.argv[2:])
    else:
        sys.path.insert(0, str(REPO))
        main()
