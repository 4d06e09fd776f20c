"""Flash attention on vs off: accuracy against a high-precision reference, and raw decode speed.

    flock /tmp/bench.lock python benchmarks/flash_attn.py [--models smollm2-135m,gemma3-270m]

Accuracy: the log-probability of every next token of a mixed text (prose, code, numbers; ~600 tokens), one
llama_decode per 256 tokens. The reference holds the same weights in F32 (the registry file requantized to
ALL_F32: its dequantized values exactly), an F32 KV cache and flash attention off; each setting's figure is
the mean and the max |logprob - reference| over the tokens. Rows:
  served, flash off   the registry file, F16 KV (the engine's default)
  served, flash on    the same with flash attention (ggml-cpu's flash attention computes in F16)
  f32 weights, ...    the reference's weights, F16 KV: attention's share of the error alone
Speed: a bare decode loop (engine.model.Model) of 1 and 8 sequences after a 64-token prompt each, and a
512-token prefill, flash on and off alternated round by round; medians.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp  # noqa: E402,F401  isort: skip  (before numpy)

import numpy as np  # noqa: E402

from engine.model import Model  # noqa: E402
from engine.registry import load_registry  # noqa: E402
from engine.typed_models import build_typed_model  # noqa: E402

TEXT = """The lighthouse keeper wrote in his log every evening: the wind, the ships that passed, the colour of the
sea. In 1893 a storm kept him awake for three nights; he counted forty-two waves over the breakwater.

def moving_average(values, window=3):
    total = sum(values[:window])
    out = [total / window]
    for i in range(window, len(values)):
        total += values[i] - values[i - window]
        out.append(total / window)
    return out

Table 4. Rainfall (mm) by month: Jan 78.2, Feb 61.5, Mar 55.0, Apr 47.9, May 52.3, Jun 49.1, Jul 38.6,
Aug 44.0, Sep 58.7, Oct 80.4, Nov 91.2, Dec 88.9. Annual total: 745.8 mm, about 6% above the long-run mean.

Q: If a train leaves at 14:05 and the journey takes 2 hours 47 minutes, when does it arrive?
A: It arrives at 16:52.

Elle a dit qu'elle reviendrait demain matin, mais personne ne l'a crue. The committee met again on Tuesday,
and after a long debate about the budget, the harbour and the new school, it voted to postpone the decision
until spring. Nobody was surprised; the same thing had happened the year before, and the year before that.
"""
THREADS = 2


def logprobs(model: Model, tokens: list[int]) -> np.ndarray:
    """log p(tokens[i+1] | tokens[:i+1]) for every i, the prompt fed in 256-token calls."""
    model.seq_remove(-1)
    rows = []
    for a in range(0, len(tokens), 256):
        piece = tokens[a:a + 256]
        rows.append(np.array(model.decode(piece, range(a, a + len(piece)), [0] * len(piece), [True] * len(piece)),
                             dtype=np.float64))
    model.seq_remove(-1)
    logits = np.concatenate(rows)[:-1]
    logits -= logits.max(axis=1, keepdims=True)
    lse = np.log(np.exp(logits).sum(axis=1))
    return logits[np.arange(len(tokens) - 1), tokens[1:]] - lse


ACCURACY_THREADS = 1  # any count gives the same figures here; one keeps a busy machine's barriers cheap


def accuracy(name: str) -> list[tuple[str, float, float]]:
    served = str(load_registry()[1][name].path)
    f32 = str(build_typed_model(name, "f32"))
    with Model(f32, n_ctx=1024, n_threads=ACCURACY_THREADS, n_seq_max=1, kv_cache_type="f32") as m:
        tokens = m.tokenize(TEXT)
        ref = logprobs(m, tokens)
    rows = []
    for label, path in (("served", served), ("f32 weights", f32)):
        for flash in (False, True):
            with Model(path, n_ctx=1024, n_threads=ACCURACY_THREADS, n_seq_max=1, flash_attn=flash) as m:
                d = np.abs(logprobs(m, tokens) - ref)
            rows.append((f"{label}, F16 KV, flash {'on' if flash else 'off'}", float(d.mean()), float(d.max())))
    print(f"{name}: {len(tokens)} tokens", file=sys.stderr)
    return rows


def first_token(name: str, prompt: str = "The ocean is") -> list[tuple[str, float]]:
    """The issue's probe: the greedy first token's logprob after `prompt`, per setting and for the reference."""
    served = str(load_registry()[1][name].path)
    f32 = str(build_typed_model(name, "f32"))
    out = []
    for label, path, kv, flash in (("reference (f32 weights, F32 KV, flash off)", f32, "f32", False),
                                   ("served, flash off", served, "f16", False), ("served, flash on", served, "f16", True)):
        with Model(path, n_ctx=256, n_threads=ACCURACY_THREADS, n_seq_max=1, kv_cache_type=kv, flash_attn=flash) as m:
            toks = m.tokenize(prompt)
            row = np.array(m.decode(toks, range(len(toks)), [0] * len(toks), [False] * (len(toks) - 1) + [True]),
                           dtype=np.float64)[0]
            m.seq_remove(-1)
        row -= row.max()
        out.append((label, float(-np.log(np.exp(row).sum()))))  # the argmax token's logprob
    return out


def speed(name: str, rounds: int, steps: int) -> dict:
    path = str(load_registry()[1][name].path)
    models = {flash: Model(path, n_ctx=1024, n_threads=THREADS, n_seq_max=8, flash_attn=flash)
              for flash in (False, True)}
    prompt = models[False].tokenize(TEXT)[:64]
    long = (models[False].tokenize(TEXT) * 3)[:512]
    times: dict = {}

    def decode_loop(m: Model, n_seq: int) -> float:
        m.seq_remove(-1)
        for s in range(n_seq):
            m.decode(prompt, range(64), [s] * 64, [False] * 63 + [True])
        t0 = time.perf_counter()
        tok = prompt[-1]
        for i in range(steps):
            m.decode([tok] * n_seq, [64 + i] * n_seq, range(n_seq), [True] * n_seq)
        dt = time.perf_counter() - t0
        m.seq_remove(-1)
        return n_seq * steps / dt

    def prefill(m: Model) -> float:
        m.seq_remove(-1)
        t0 = time.perf_counter()
        m.decode(long, range(512), [0] * 512, [False] * 511 + [True])
        dt = time.perf_counter() - t0
        m.seq_remove(-1)
        return 512 / dt

    for r in range(rounds):
        for flash in ((False, True) if r % 2 == 0 else (True, False)):
            m = models[flash]
            times.setdefault((flash, "decode 1 seq"), []).append(decode_loop(m, 1))
            times.setdefault((flash, "decode 8 seq"), []).append(decode_loop(m, 8))
            times.setdefault((flash, "prefill 512"), []).append(prefill(m))
    for m in models.values():
        m.close()
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="smollm2-135m,gemma3-270m")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-accuracy", action="store_true")
    args = p.parse_args()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    if not args.skip_accuracy:
        print("\n| model | setting | mean abs dlogprob vs F32 reference | max |\n|---|---|---|---|")
        for name in args.models.split(","):
            for label, mean, mx in accuracy(name):
                print(f"| {name} | {label} | {mean:.4f} | {mx:.3f} |", flush=True)
        print("\n| model | setting | logprob of the greedy first token after 'The ocean is' |\n|---|---|---|")
        for name in args.models.split(","):
            for label, lp in first_token(name):
                print(f"| {name} | {label} | {lp:.4f} |", flush=True)
    if args.skip_speed:
        return 0
    print("\n| model | workload | flash off tok/s | flash on tok/s | on / off |\n|---|---|---|---|---|")
    for name in args.models.split(","):
        s = speed(name, args.rounds, args.steps)
        for w in ("decode 1 seq", "decode 8 seq", "prefill 512"):
            print(f"| {name} | {w} | {s[(False, w)]:.1f} | {s[(True, w)]:.1f} | {s[(True, w)] / s[(False, w)]:.2f} |",
                  flush=True)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
