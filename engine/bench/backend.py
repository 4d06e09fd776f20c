"""What the numbers were measured on: the llama.cpp build's GPU backend, if any, and whether it was used."""
from __future__ import annotations

import llama_cpp

GPU_BACKENDS = ("CUDA", "Metal", "MTL", "HIP", "ROCm", "Vulkan", "SYCL")


def gpu_backend_of_build() -> str | None:
    """The GPU backend llama.cpp was compiled with (from its system info), or None for a CPU-only build."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    names = [part.split(":")[0].strip() for part in info.split("|") if ":" in part]
    for name in names:
        for gpu in GPU_BACKENDS:
            if name.upper().startswith(gpu.upper()):
                return "Metal" if gpu == "MTL" else gpu
    return "GPU" if llama_cpp.llama_supports_gpu_offload() else None


def describe_backend(n_threads: int, n_gpu_layers: int) -> str:
    gpu = gpu_backend_of_build()
    if gpu and n_gpu_layers > 0:
        where = gpu
    elif gpu:
        where = f"CPU ({gpu} build, no layers offloaded)"
    else:
        where = "CPU"
    return (f"backend: {where} | llama-cpp-python {llama_cpp.__version__} | threads {n_threads} | "
            f"GPU layers {n_gpu_layers}")
