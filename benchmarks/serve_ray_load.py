"""`serve --ray` under load, with benchmarks/serve_load.py's client and metrics (TTFT, TPOT, ITL, e2e, tok/s):

- throughput: 2 Ray Serve replicas x 1 thread vs 1 replica x 2 threads (through Serve too) vs the plain
  single-process `serve` with 2 threads, at concurrency 1/4/8/16, alternating who goes first;
- Serve's cost per request: TTFT p50 at concurrency 1 through Serve (1 replica x 2 threads) over direct;
- prefix-cache hit rate (prompt tokens not evaluated again / all prompt tokens, from every replica's /metrics)
  on an lm-eval-shaped workload (a few long few-shot contexts, many questions on each, short generations),
  with prefix-aware routing and with Serve's least-loaded routing only.

    .venv/bin/python benchmarks/serve_ray_load.py                # everything (~10 min on 2 cores)
    .venv/bin/python benchmarks/serve_ray_load.py --quick        # 32 new tokens, 1 request per client
    .venv/bin/python benchmarks/serve_ray_load.py --only hit-rate

Results: benchmarks/results/serve_ray_load.{md,json,png}. Report only: no goal is checked here.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_load import RESULTS, Served, ms, run_level, summarize  # noqa: E402

DIRECT, RAY_1X2, RAY_2X1 = "serve, 1 process x 2 threads", "serve --ray, 1 replica x 2 threads", \
    "serve --ray, 2 replicas x 1 thread"
READY = r"serving \S+ at (http://\S+)/v1"


def start(name: str, model: str, *extra: str) -> Served:
    cmd = [sys.executable, "-m", "engine", "serve", "--model", model, "--port", "0", "--max-queue", "256", *extra]
    return Served(name, cmd, None, READY)


def contender(name: str, model: str, n_ctx: int, slots: int, routing: str = "prefix") -> Served:
    common = ("--n-ctx", str(n_ctx), "--slots", str(slots))
    if name == DIRECT:
        return start(name, model, "--n-threads", "2", *common)
    if name == RAY_1X2:
        return start(name, model, "--ray", "--replicas", "1", "--n-threads", "2", "--routing", routing, *common)
    return start(name, model, "--ray", "--replicas", "2", "--n-threads", "1", "--routing", routing, *common)


# ---- prefix-cache hit rate ----------------------------------------------------------------------------------

def lm_eval_shaped(n_contexts: int, questions: int, seed: int = 0) -> list[str]:
    """Few-shot contexts of ~300 tokens (as lm-eval builds them), each followed by many different questions;
    shuffled, as a harness sends them from several workers."""
    rng = random.Random(seed)
    prompts = []
    for c in range(n_contexts):
        shots = "\n\n".join(f"Question: what is {rng.randint(10, 99)} plus {rng.randint(10, 99)} in context {c}?\n"
                            f"Answer: the sum is {rng.randint(20, 198)}, found by adding tens then units."
                            for _ in range(8))
        for q in range(questions):
            prompts.append(f"{shots}\n\nQuestion: what is {q + 11} plus {c + 23}?\nAnswer:")
    rng.shuffle(prompts)
    return prompts


def replica_counters(base_url: str, replicas: int) -> dict[str, tuple[float, float]]:
    """(prefix-cache hits, queries) per replica, each replica named through the header the router honours."""
    seen: dict[str, tuple[float, float]] = {}
    for _ in range(200):
        rid = httpx.get(base_url + "/health", timeout=30).headers.get("x-sampling-engine-replica", "direct")
        if rid in seen:
            if len(seen) >= replicas:
                break
            continue
        text = httpx.get(base_url + "/metrics", headers={"x-sampling-engine-replica": rid}, timeout=30).text
        values = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line and not line.startswith("#")}
        seen[rid] = (values["sampling_engine_prefix_cache_hits_total"],
                     values["sampling_engine_prefix_cache_queries_total"])
    return seen


async def send_all(base_url: str, prompts: list[str], concurrency: int, max_tokens: int) -> int:
    queue: asyncio.Queue = asyncio.Queue()
    for p in prompts:
        queue.put_nowait(p)
    failures = 0
    async with httpx.AsyncClient(timeout=600) as client:
        async def worker():
            nonlocal failures
            while not queue.empty():
                p = queue.get_nowait()
                r = await client.post(base_url + "/v1/completions",
                                      json={"prompt": p, "max_tokens": max_tokens, "temperature": 0})
                failures += r.status_code != 200
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return failures


def hit_rate(model: str, n_ctx: int, slots: int, routing: str, prompts: list[str], concurrency: int) -> dict:
    s = contender(RAY_2X1, model, n_ctx, slots, routing)
    try:
        s.wait_ready()
        before = replica_counters(s.base_url, 2)
        t0 = time.perf_counter()
        failures = asyncio.run(send_all(s.base_url, prompts, concurrency, 4))
        wall = time.perf_counter() - t0
        after = replica_counters(s.base_url, 2)
    finally:
        s.stop()
    hits = sum(after[r][0] - before.get(r, (0, 0))[0] for r in after)
    queries = sum(after[r][1] - before.get(r, (0, 0))[1] for r in after)
    return {"routing": routing, "requests": len(prompts), "failures": failures, "hit_rate": hits / queries,
            "prompt_tokens": queries, "cached_tokens": hits, "wall_s": wall,
            "per_replica": {r: (after[r][0] - before.get(r, (0, 0))[0]) / max(1.0, after[r][1] - before.get(
                r, (0, 0))[1]) for r in after}}


# ---- main ---------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--slots", type=int, default=8, help="slots per replica / process")
    p.add_argument("--n-ctx", type=int, default=1024)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--rounds", type=int, default=1, help="rounds over the contenders (the order rotates)")
    p.add_argument("--only", choices=("load", "hit-rate"), default=None)
    p.add_argument("--contexts", type=int, default=6, help="hit rate: few-shot contexts")
    p.add_argument("--questions", type=int, default=8, help="hit rate: questions per context")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    if args.quick:
        args.tokens = 32
    summary: dict = {"model": args.model, "tokens": args.tokens, "slots": args.slots,
                     "concurrency": args.concurrency, "levels": {}, "date": time.strftime("%Y-%m-%d %H:%M")}
    with open("/proc/loadavg") as f:
        summary["load_before"] = f.read().split()[:3]

    if args.only != "hit-rate":
        # One contender at a time (two local Rays idling beside a measurement would skew it on 2 cores); the
        # order rotates between rounds.
        results, walls = {}, {}
        names = [DIRECT, RAY_1X2, RAY_2X1]
        for rnd in range(args.rounds):
            for name in names[rnd % 3:] + names[:rnd % 3]:
                s = contender(name, args.model, args.n_ctx, args.slots)
                try:
                    s.wait_ready()
                    ours = _as_ours(s)
                    ban = {"2": -100, "0": -100}  # SmolLM2's end-of-generation tokens: exactly --tokens each
                    asyncio.run(run_level(ours, 1, 2, 4, ban))  # warm-up
                    for c in args.concurrency:
                        res, wall = asyncio.run(run_level(ours, c, c if args.quick else 2 * c, args.tokens, ban))
                        results.setdefault(f"{name}|{c}", []).extend(res)
                        walls.setdefault(f"{name}|{c}", []).append(wall)
                        print(f"C={c:2d} {name}: {sum(r.tokens for r in res if r.ok) / wall:.1f} tok/s, "
                              f"{sum(not r.ok for r in res)} failed", file=sys.stderr)
                finally:
                    s.stop()
        summary["levels"] = {k: summarize(v, walls[k]) for k, v in results.items()}
        d, r = summary["levels"].get(f"{DIRECT}|1"), summary["levels"].get(f"{RAY_1X2}|1")
        if d and r:
            summary["serve_overhead_ttft_p50_ms"] = (r["ttft"]["p50"] - d["ttft"]["p50"]) * 1000

    if args.only != "load":
        prompts = lm_eval_shaped(args.contexts, args.questions)
        summary["workload"] = (f"serve --ray, 2 replicas x 1 thread, 4 slots each; {args.contexts} few-shot contexts "
                               f"(~300 tokens) x {args.questions} questions, shuffled, 4 clients, 4 new tokens each")
        summary["hit_rate"] = [hit_rate(args.model, args.n_ctx, 4, routing, prompts, 4)
                               for routing in ("prefix", "least-loaded")]
    with open("/proc/loadavg") as f:
        summary["load_after"] = f.read().split()[:3]

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(summary)
    (out / "serve_ray_load.md").write_text(table)
    (out / "serve_ray_load.json").write_text(json.dumps(summary, indent=1, default=float))
    chart(summary, out / "serve_ray_load.png")
    print(table)
    return summary


def _as_ours(s: Served) -> Served:
    """run_level asks for usage chunks from servers named like ours."""
    from serve_load import OURS

    twin = Served.__new__(Served)
    twin.__dict__.update(s.__dict__)
    twin.name = OURS
    return twin


def markdown(summary: dict) -> str:
    lines = [f"model {summary['model']} | {summary['date']} | load before {summary['load_before']}, "
             f"after {summary['load_after']}", ""]
    if summary["levels"]:
        lines += [f"{summary['tokens']} new tokens per request, streamed; {summary['slots']} slots per replica", "",
                  "| server | C | requests | failed | output tok/s | TTFT mean / p50 / p99 ms | "
                  "TPOT mean / p50 / p99 ms | e2e mean / p50 / p99 ms |", "|---|---|---|---|---|---|---|---|"]
        for c in summary["concurrency"]:
            for name in (DIRECT, RAY_1X2, RAY_2X1):
                s = summary["levels"].get(f"{name}|{c}")
                if s:
                    trio = lambda m: " / ".join(ms(s[m][k]) for k in ("mean", "p50", "p99"))  # noqa: E731
                    lines.append(f"| {name} | {c} | {s['requests']} | {s['failures']} | {s['output_tok_s']:.1f} | "
                                 f"{trio('ttft')} | {trio('tpot')} | {trio('e2e')} |")
        if "serve_overhead_ttft_p50_ms" in summary:
            lines += ["", f"Serve's cost per request (TTFT p50 at C=1, 1 replica x 2 threads through Serve minus "
                          f"the direct server): {summary['serve_overhead_ttft_p50_ms']:.1f} ms"]
    for h in summary.get("hit_rate", ()):
        if h is summary["hit_rate"][0]:
            lines += ["", f"Prefix-cache hit rate: {summary['workload']}", "",
                      "| routing | requests | failed | prompt tokens | not evaluated again | hit rate | wall s |",
                      "|---|---|---|---|---|---|---|"]
        lines.append(f"| {h['routing']} | {h['requests']} | {h['failures']} | {h['prompt_tokens']:.0f} | "
                     f"{h['cached_tokens']:.0f} | {h['hit_rate']:.1%} | {h['wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def chart(summary: dict, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    if not summary["levels"]:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cs = summary["concurrency"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for name, marker in ((DIRECT, "o"), (RAY_1X2, "s"), (RAY_2X1, "^")):
        lv = [summary["levels"].get(f"{name}|{c}") for c in cs]
        a.plot(cs, [x["output_tok_s"] if x else float("nan") for x in lv], marker=marker, label=name)
        b.plot(cs, [x["ttft"]["p50"] if x else float("nan") for x in lv], marker=marker, label=name)
    a.set(xlabel="concurrency", ylabel="output tokens / s", title="throughput", xticks=cs)
    b.set(xlabel="concurrency", ylabel="seconds", title="p50 time to first token", xticks=cs)
    a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


if __name__ == "__main__":
    main()
