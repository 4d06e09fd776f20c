"""Ours vs a stock `pip install llama-cpp-python==0.3.36`, per weight type, each contender in its own process.

    python benchmarks/stock_compare.py --types smollm2-135m,smollm2-135m-q8_0 --rounds 3 [--patched-lib DIR]
    python benchmarks/stock_compare.py --table runs.jsonl ...     # the table of earlier runs' --out files

Contenders (one process each, alternated round by round, reversed every other round):
  ours     engine.Engine in this interpreter (the ./dev build, numerics="exact", prefix cache off)
  fast     the same with numerics="fast" (--fast)
  patched  ours on the libraries in --patched-lib (LLAMA_CPP_LIB_PATH: the project's patched llama.cpp)
  before   ours from the checkout in --before (the same build; only our code differs: a refactor's check)
  stock    llama_cpp.Llama in --stock-python's venv: default build, default settings but n_ctx and 2 threads
Workloads, all through create_completion with every cache off (Llama.reset() before each call):
  prefill  a 512-token prompt, max_tokens=1: prompt tokens/s
  decode   64 generated tokens (end-of-generation banned) minus 1: generated tokens/s
  echo     echo=True, logprobs=1 over a 512-token prompt (lm-eval's loglikelihood): prompt tokens/s
  ttft     time to the first streamed chunk of a 2,000-token prompt: seconds
  k1..k8   one llama_decode of k tokens of one sequence (all k rows' logits), seconds per call (raw)
Prints one JSON line per (type, contender, round) and a Markdown table of medians and ratios to stock.
The worker half (`--worker`) imports only llama_cpp (stock) or engine (ours): it runs in either venv.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))  # this checkout's engine (the stock side never imports it)
TEXT = ("The history of the river valley is long and varied. Farmers came first, then traders, then the "
        "railway, and with it the town grew from a handful of houses into a market for the whole region. ")
THREADS = 2
N_CTX = 4096


# ---- the worker: one contender, one model, one round -------------------------------------------------------

def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class StockSide:
    def __init__(self, path: str):
        import llama_cpp

        self.llama_cpp = llama_cpp
        self.llm = llama_cpp.Llama(path, n_ctx=N_CTX, n_threads=THREADS, n_threads_batch=THREADS, verbose=False)
        self.path = path
        self.eog = [t for t in range(self.llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, t)]

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode())

    def complete(self, prompt: list[int], max_tokens: int, ban_eog: bool = False):
        self.llm.reset()
        bias = {t: -100.0 for t in self.eog} if ban_eog else None
        return self.llm.create_completion(prompt, max_tokens=max_tokens, temperature=0, logit_bias=bias)

    def echo(self, prompt: list[int]):
        if not hasattr(self, "llm_all"):  # logprobs need logits_all=True in Llama (n_ctx: room for 512 rows)
            self.llm_all = self.llama_cpp.Llama(self.path, n_ctx=640, n_threads=THREADS, n_threads_batch=THREADS,
                                                logits_all=True, verbose=False)
        self.llm_all.reset()
        # Llama's echo fails on a token-list prompt (it adds the list to a str): give it the text
        text = self.llm.detokenize(prompt[1:] if prompt[:1] == [self.llm.token_bos()] else prompt).decode()
        return self.llm_all.create_completion(text, max_tokens=1, echo=True, logprobs=1, temperature=0)

    def first_chunk(self, prompt: list[int]) -> None:
        self.llm.reset()
        next(iter(self.llm.create_completion(prompt, max_tokens=4, temperature=0, stream=True)))

    def decode_k(self, tokens: list[int], n_past: int) -> None:
        batch = self.llm._batch
        batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
        self.llm._ctx.decode(batch)

    def forget(self, p0: int) -> None:
        self.llm._ctx.kv_cache_seq_rm(-1, p0, -1)


class OursSide:
    def __init__(self, path: str, numerics: str):
        from engine import Engine

        self.engine = Engine(path, n_ctx=N_CTX, n_threads=THREADS, prefix_cache=False, numerics=numerics)
        self.model = self.engine.model
        self.ban = {str(t): -100 for t in self.model.eog_tokens}

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text)

    def complete(self, prompt: list[int], max_tokens: int, ban_eog: bool = False):
        return self.engine.create_completion(prompt=prompt, max_tokens=max_tokens, temperature=0,
                                             logit_bias=self.ban if ban_eog else None)

    def echo(self, prompt: list[int]):
        return self.engine.create_completion(prompt=prompt, max_tokens=1, echo=True, logprobs=1, temperature=0)

    def first_chunk(self, prompt: list[int]) -> None:
        stream = self.engine.create_completion(prompt=prompt, max_tokens=4, temperature=0, stream=True)
        next(iter(stream))
        stream.close()

    def decode_k(self, tokens: list[int], n_past: int) -> None:  # on the loop thread, which owns the model
        k = len(tokens)
        self.engine.loop.call(lambda: self.model.decode(tokens, range(n_past, n_past + k), [0] * k, [True] * k))

    def forget(self, p0: int) -> None:
        self.engine.loop.call(lambda: self.model.seq_remove(0, p0, -1))


def run_worker(side: str, path: str, reps: int) -> dict:
    t0 = time.perf_counter()
    s = StockSide(path) if side == "stock" else OursSide(path, "fast" if side == "fast" else "exact")
    load_s = time.perf_counter() - t0
    long = s.tokenize(TEXT * 80)
    p512, p2000 = long[:512], long[:2000]
    assert len(p2000) == 2000, len(long)
    short = s.tokenize("Once upon a time")
    out = {"load_s": load_s}
    s.complete(short, 4)  # warm-up
    out["prefill"] = 512 / _median_time(lambda: s.complete(p512, 1), reps)
    t64 = _median_time(lambda: s.complete(short, 65, ban_eog=True), reps)
    t1 = _median_time(lambda: s.complete(short, 1), reps)
    out["decode"] = 64 / (t64 - t1)
    s.echo(p512[:32])  # warm-up (loads Llama's logits_all twin)
    out["echo"] = 512 / _median_time(lambda: s.echo(p512), reps)
    out["ttft"] = _median_time(lambda: s.first_chunk(p2000), max(1, reps - 1))
    # k tokens of one sequence per llama_decode, after a 64-token context; each call is undone afterwards
    s.forget(0)
    s.decode_k(long[:64], 0)
    for k in (1, 2, 4, 8):
        calls = 24 if k <= 2 else 12

        def one(k=k):
            s.decode_k(long[64:64 + k], 64)
            s.forget(64)
        one()
        out[f"k{k}"] = _median_time(one, calls)
    if side != "stock":
        s.forget(0)
        out["batch_invariant"] = s.engine.batch_invariant
        s.engine.close()
    return out


# ---- the driver --------------------------------------------------------------------------------------------

def model_file(name: str) -> str:
    from engine.registry import load_registry
    from engine.typed_models import build_typed_model

    entries = load_registry()[1]
    if name in entries:
        return str(entries[name].path)
    registry_name, weight_type = name.rsplit("-", 1)
    return str(build_typed_model(registry_name, weight_type))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def contender_command(name: str, path: str, args) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("GGML_CPU_TILED_MM", "GGML_LLAMAFILE_EXACT_GEMV",
                                                            "LLAMA_CPP_LIB_PATH")}
    python = args.stock_python if name == "stock" else sys.executable
    if name == "patched":
        env["LLAMA_CPP_LIB_PATH"] = args.patched_lib
    script = HERE
    if name == "before":  # ours from another checkout (its own engine/ and kernels/), on this venv's build
        script = Path(args.before).resolve() / "benchmarks" / "stock_compare.py"
    side = "ours" if name in ("patched", "before") else name
    return [python, str(script), "--worker", side, "--model", path, "--reps", str(args.reps)], env


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", choices=["ours", "fast", "stock"])
    p.add_argument("--model")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--types", default="smollm2-135m,gemma3-270m,smollm2-135m-q8_0,smollm2-135m-q4_0,"
                                      "smollm2-135m-q5_0,smollm2-135m-f16")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--stock-python", default=str(Path.home() / ".cache/sampling-engine/stock-venv/bin/python"))
    p.add_argument("--patched-lib", default=None, help="folder of the patched libllama/libggml (LLAMA_CPP_LIB_PATH)")
    p.add_argument("--fast", action="store_true", help="also ours with numerics='fast'")
    p.add_argument("--before", default=None, metavar="CHECKOUT",
                   help="also ours from another checkout (say a worktree of the commit before a refactor), "
                        "alternated with the others: the same build, only our code differs")
    p.add_argument("--out", default=None, help="append the JSON lines here too")
    p.add_argument("--table", nargs="+", metavar="JSONL", help="only print the table of earlier runs' --out files")
    args = p.parse_args()
    if args.table:
        rows = [json.loads(line) for f in args.table for line in open(f) if line.strip()]
        results: dict = {}
        for row in rows:
            results.setdefault((row["type"], row["contender"]), []).append(row)
        order = list(dict.fromkeys(r["contender"] for r in rows))
        print_table(results, sorted(order, key=lambda c: c != "stock"), list(dict.fromkeys(r["type"] for r in rows)))
        return 0
    if args.worker:
        print(json.dumps(run_worker(args.worker, args.model, args.reps)))
        return 0
    contenders = ["stock", "ours"] + (["fast"] if args.fast else []) + (["patched"] if args.patched_lib else []) \
        + (["before"] if args.before else [])
    results: dict = {}
    for name in args.types.split(","):
        path = model_file(name)
        for r in range(args.rounds):
            order = contenders if r % 2 == 0 else contenders[::-1]
            for c in order:
                cmd, env = contender_command(c, path, args)
                load = uptime()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(f"{name} {c}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = dict(json.loads(proc.stdout.strip().splitlines()[-1]), type=name, contender=c, round=r,
                           uptime=load)
                results.setdefault((name, c), []).append(row)
                line = json.dumps(row)
                print(line, flush=True)
                if args.out:
                    with open(args.out, "a") as f:
                        f.write(line + "\n")
    print_table(results, contenders, args.types.split(","))
    return 0


def print_table(results: dict, contenders: list[str], types: list[str]) -> None:
    def med(t, c, key):
        rows = results.get((t, c), [])
        return statistics.median(r[key] for r in rows) if rows else float("nan")

    print("\n| type | contender | prefill tok/s | decode tok/s | echo tok/s | TTFT 2000 s | "
          "prefill / stock | decode / stock | echo / stock | TTFT stock / ours | k=2,4,8 cost vs k=1 | invariant |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in types:
        for c in contenders:
            if (t, c) not in results:
                continue
            ks = ", ".join(f"{med(t, c, f'k{k}') / med(t, c, 'k1'):.2f}" for k in (2, 4, 8))
            inv = results[(t, c)][0].get("batch_invariant", "-")
            print(f"| {t} | {c} | {med(t, c, 'prefill'):.0f} | {med(t, c, 'decode'):.1f} | {med(t, c, 'echo'):.0f} | "
                  f"{med(t, c, 'ttft'):.2f} | {med(t, c, 'prefill') / med(t, 'stock', 'prefill'):.2f} | "
                  f"{med(t, c, 'decode') / med(t, 'stock', 'decode'):.2f} | "
                  f"{med(t, c, 'echo') / med(t, 'stock', 'echo'):.2f} | "
                  f"{med(t, 'stock', 'ttft') / med(t, c, 'ttft'):.2f} | {ks} | {inv} |")


if __name__ == "__main__":
    sys.exit(main())
