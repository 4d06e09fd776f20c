"""Prefill and decode speed of one llama.cpp build, for llama_patches/README.md's table. One process per
measurement (the patch's switch is read once per process); run it through the driver below.

    python llama_patches/bench_decode.py MODEL.gguf          # one process: prints {"prefill_tps", "decode_tps"}
    python llama_patches/bench_decode.py --compare A.gguf ... # alternates: patched, GGML_LLAMAFILE_EXACT_GEMV=0,
        and the build in $LLAMAFILE_OFF_LIB (a GGML_LLAMAFILE=OFF libllama dir), ROUNDS times; prints ratios

The patched build is the llama_cpp in this Python unless LLAMA_CPP_LIB_PATH points elsewhere.
"""
import json
import os
import statistics
import subprocess
import sys
import time

THREADS, PREFILL, DECODE = 2, 512, 64


def measure(path: str) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from engine.model import Model, _system_info

    model = Model(path, n_ctx=1024, n_seq_max=1, n_threads=THREADS)
    prompt = [(i * 7919) % 5000 + 100 for i in range(PREFILL)]
    prefill, decode = [], []
    for _ in range(3):
        model.seq_remove(-1)
        t = time.perf_counter()
        model.decode(prompt, list(range(PREFILL)), [0] * PREFILL, [False] * (PREFILL - 1) + [True])
        prefill.append(PREFILL / (time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(DECODE):
            model.decode([prompt[i]], [PREFILL + i], [0], [True])
        decode.append(DECODE / (time.perf_counter() - t))
    info = _system_info()
    model.close()
    return {"prefill_tps": statistics.median(prefill), "decode_tps": statistics.median(decode),
            "llamafile": "LLAMAFILE = 1" in info, "exact_gemv": "LLAMAFILE_EXACT_GEMV = 1" in info}


def compare(paths: list[str], rounds: int) -> None:
    configs = {"patched": {}, "patch off (stock tinyBLAS)": {"GGML_LLAMAFILE_EXACT_GEMV": "0"}}
    if os.environ.get("LLAMAFILE_OFF_LIB"):
        configs["llamafile off"] = {"LLAMA_CPP_LIB_PATH": os.environ["LLAMAFILE_OFF_LIB"]}
    for path in paths:
        runs = {name: [] for name in configs}
        for _ in range(rounds):
            for name, env in configs.items():
                out = subprocess.run([sys.executable, __file__, path], env=dict(os.environ, **env),
                                     capture_output=True, text=True, check=True)
                runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
        base = {k: statistics.median(r[k] for r in runs["patch off (stock tinyBLAS)"]) for k in ("prefill_tps", "decode_tps")}
        for name, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in ("prefill_tps", "decode_tps")}
            print(f"{os.path.basename(path)}  {name:28s} prefill {med['prefill_tps']:7.1f} tok/s ({med['prefill_tps'] / base['prefill_tps']:.3f}x)"
                  f"  decode {med['decode_tps']:6.1f} tok/s ({med['decode_tps'] / base['decode_tps']:.3f}x)"
                  f"  runs: {[round(r['decode_tps'], 1) for r in rs]}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(sys.argv[2:], int(os.environ.get("ROUNDS", "3")))
    else:
        print(json.dumps(measure(sys.argv[1])))
