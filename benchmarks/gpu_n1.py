"""n = 1 throughput on a GPU build: ours vs llama-cpp-python's create_completion vs a bare decode loop,
same process, same model (see ../shared/gpu/README.md). Usage: python benchmarks/gpu_n1.py MODEL.gguf OUT.json"""
import llama_cpp  # isort: skip  (before numpy: the other order crashed model loading on the GPU machine)

import json
import statistics
import sys
import time

import numpy as np

from engine import Engine

N_TOKENS, ROUNDS, PROMPT = 128, 5, "Once upon a time"


def timed(fn):
    fn()
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(path, out):
    engine = Engine(path, n_ctx=4096, n_gpu_layers=99)
    ban = {str(t): -100 for t in engine.model.eog_tokens}
    sampling = dict(temperature=1.0, top_p=0.9)
    res = {}
    res["ours"] = timed(lambda: engine.create_completion(prompt=PROMPT, max_tokens=N_TOKENS, seed=1,
                                                         logit_bias=ban, **sampling))
    res["ours_freq_penalty"] = timed(lambda: engine.create_completion(
        prompt=PROMPT, max_tokens=N_TOKENS, seed=1, logit_bias=ban, frequency_penalty=0.5, **sampling))
    res["ours_greedy"] = timed(lambda: engine.create_completion(prompt=PROMPT, max_tokens=N_TOKENS,
                                                                temperature=0, logit_bias=ban))
    model = engine.model
    prompt = model.tokenize(PROMPT)

    def bare():
        engine.decoder.forget()
        n = len(prompt)
        rows = model.decode(prompt, np.arange(n), np.zeros(n, int), np.arange(n) == n - 1)
        for i in range(N_TOKENS - 1):
            rows = model.decode([int(np.argmax(rows[0]))], [n + i], [0], [True])
        model.seq_remove(0)
    res["bare_loop"] = timed(bare)
    engine.close()
    llm = llama_cpp.Llama(path, n_ctx=4096, n_gpu_layers=99, verbose=False, seed=1)
    kw = dict(max_tokens=N_TOKENS, top_k=0, min_p=0, repeat_penalty=1.0, logit_bias={int(k): v for k, v in ban.items()})
    res["llama_cpp_python"] = timed(lambda: llm.create_completion(PROMPT, seed=1, **sampling, **kw))
    res["llama_cpp_python_greedy"] = timed(lambda: llm.create_completion(PROMPT, temperature=0, **kw))
    tok_s = {k: N_TOKENS / v for k, v in res.items()}
    report = {"tok_s": tok_s, "ours_vs_llama_cpp_python": tok_s["ours"] / tok_s["llama_cpp_python"],
              "ours_vs_bare_loop": tok_s["ours"] / tok_s["bare_loop"]}
    print(json.dumps(report, indent=1))
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

# Measured 2026-11-26 on one H100 (llama-cpp-python 0.3.36, CUDA build, SmolLM2-135M Q4_1), result in
# benchmarks/results/h100_n1.json. On that machine numba's LLVM crashed when initialised after llama.cpp's
# CUDA libraries were loaded, and loading the model crashed when numpy came first; preloading llvmlite's
# library fixes both orders:  LD_PRELOAD=$(python3 -c "import llvmlite, os; print(os.path.join(
#   os.path.dirname(llvmlite.__file__), 'binding', 'libllvmlite.so'))") python3 benchmarks/gpu_n1.py ...
