"""Load the three contenders on one model, time every workload in alternating rounds, print the table."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

from .backend import describe_backend
from .report import Row, markdown_table
from .timing import alternating_rates
from .workloads import build_workloads


@dataclass(frozen=True)
class BenchConfig:
    model: str | None = None  # registry name or .gguf path; None: the default model
    n_tokens: int = 128  # generated per choice
    n_score: int = 256  # prompt tokens in the scoring row
    rounds: int = 5
    warm_up: bool = True  # one untimed run of each contender first
    n_ctx: int = 1024
    n_threads: int | None = None  # None: every core, for all three contenders alike
    n_gpu_layers: int = 0
    n_seq_max: int | None = None  # ours: None, the Engine's default (at least 4: the n=4 row)
    max_queue: int | None = None  # ours: None, the Engine's default
    flash_attn: bool = False
    repack_weights: bool | None = None  # None: as numerics decides
    kv_cache_type: str = "f16"
    numerics: str = "exact"
    speculative: str | None = None  # ours only: speculative decoding mode (engine/speculative.py)
    draft_max: int = 8
    aliases: tuple[str, ...] = ()  # ours: other names for the model (the engine options take them everywhere)
    verbose: bool = False  # llama.cpp's log, for every contender
    png: str | None = None

    @classmethod
    def quick(cls, **overrides) -> "BenchConfig":
        """A short run (about a minute on 2 CPU cores for a 135M model): the suite runs this one."""
        return cls(**{"n_tokens": 16, "n_score": 48, "rounds": 3, "warm_up": False, **overrides})


def on_engine_thread(engine, contenders: dict) -> dict:
    """The other contenders run on the engine's loop thread, so every llama_decode of the process comes from
    one thread: llama.cpp's CPU backend keeps an OpenMP team per calling thread, and two live teams on a
    machine with few cores throttle their spin-waits (every step of both ~1.5x slower, measured on 2 cores)."""
    return {name: fn if name == "ours" else (lambda r, fn=fn: engine.loop.call(lambda: fn(r)))
            for name, fn in contenders.items()}


def run_bench(cfg: BenchConfig, out=sys.stdout) -> list[Row]:
    from ..api import Engine
    from ..model import KV_CACHE_TYPES, Model
    from .llama_python import load_llama

    threads = cfg.n_threads or os.cpu_count() or 1
    if cfg.n_seq_max is not None and cfg.n_seq_max < 4:
        raise ValueError(f"bench needs --slots of at least 4 for its n=4 row, got {cfg.n_seq_max}")
    extra = {k: v for k, v in dict(n_seq_max=cfg.n_seq_max, max_queue=cfg.max_queue).items() if v is not None}
    same = dict(n_ctx=cfg.n_ctx, n_threads=threads, n_gpu_layers=cfg.n_gpu_layers, flash_attn=cfg.flash_attn)
    print(f"loading {cfg.model or 'the default model'} four times (ours, a bare llama.cpp context, "
          "llama-cpp-python, and llama-cpp-python with logits_all for logprobs)...", file=sys.stderr)
    kv = dict(kv_cache_type=cfg.kv_cache_type, numerics=cfg.numerics)
    spec = dict(speculative=cfg.speculative, draft_max=cfg.draft_max)
    with Engine(cfg.model, repack_weights=cfg.repack_weights, aliases=cfg.aliases, verbose=cfg.verbose, **same,
                **kv, **extra, **spec) as engine:
        path = str(engine.model.path)
        with Model(path, n_seq_max=4, repack_weights=cfg.repack_weights, verbose=cfg.verbose, **same,
                   **kv) as bare_model:
            llcp = dict(same, n_threads_batch=threads, seed=1, verbose=cfg.verbose)
            if cfg.kv_cache_type != "f16":  # the same KV type (and so flash attention) in every contender
                ggml_type = KV_CACHE_TYPES[cfg.kv_cache_type]
                llcp.update(type_k=ggml_type, type_v=ggml_type, flash_attn=True)
            llama = load_llama(path, engine.model.repack_weights, **llcp)
            llama_all = load_llama(path, engine.model.repack_weights, logits_all=True, **llcp)
            try:
                rows = []
                for w in build_workloads(engine, bare_model, llama, llama_all, cfg.n_tokens, cfg.n_score):
                    t0 = time.perf_counter()
                    contenders = on_engine_thread(engine, w.contenders)
                    rows.append(Row(w.name, alternating_rates(contenders, cfg.rounds, cfg.warm_up)))
                    print(f"  {w.name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            finally:
                llama.close()
                llama_all.close()
        model_id = engine.model_id
    backend = describe_backend(threads, cfg.n_gpu_layers)
    header = (f"{backend} | model {model_id} | median of {cfg.rounds} alternating rounds"
              f"{' after a warm-up' if cfg.warm_up else ''}")
    print(header + "\n\n" + markdown_table(rows), file=out)
    if cfg.png:
        from .chart import matplotlib_available, write_chart

        if matplotlib_available():
            write_chart(rows, header, cfg.png)
            print(f"chart written to {cfg.png}", file=sys.stderr)
        else:
            print(f"--png: matplotlib is not installed, so no chart was written "
                  f"(pip install matplotlib, or sampling-engine[chart])", file=sys.stderr)
    return rows
