"""`sampling-engine bench`: ours vs llama-cpp-python's create_completion vs a bare llama_decode loop on this
machine (CPU, Metal or CUDA), same model and threads, alternating rounds; a Markdown table of tok/s."""
from .run import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
