"""Build and numerics probing: what llama.cpp is in this process and what decides a response's bytes.

- `process.py`: llama.cpp's process-wide state: its log (routed here, captured while loading), its backend,
  and ggml's kernel switches chosen by `numerics` ("exact" or "fast"), which ggml reads once per process.
- `build.py`: what the installed llama.cpp is (system info, ggml version, llamafile, our patch, exact build).
- `verdict.py`: the batch-invariance verdict's message when it is off (cause and fix).
- `fingerprint.py`: `system_fingerprint`, a hash of every input that decides a seeded response's bytes.

The measured verdict itself is `Model.check_batch_invariance` (it needs a loaded model). This room sits just
above `kernels/` and llama_cpp: it imports nothing else of the engine, and the core imports it.
"""
