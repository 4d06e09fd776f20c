"""Load numba's LLVM (libllvmlite) before llama.cpp loads its backends.

On a CUDA machine, numba segfaulted when libllvmlite was loaded after llama.cpp's CUDA libraries: the
driver brings its own LLVM, and libllvmlite's symbols then bound to that copy. Loading libllvmlite
first binds its symbols to itself (ctypes loads with RTLD_NOW), which is what the former
`LD_PRELOAD=<llvmlite>/binding/libllvmlite.so` workaround achieved. So: import `engine` before `llama_cpp`.
"""
import sys


def load_llvmlite_first() -> bool:
    """Load libllvmlite now (importing llvmlite.binding does: it reads the library's version). Returns
    False when llama_cpp was imported before us, too late to choose the order."""
    import llvmlite.binding  # noqa: F401

    return "llama_cpp" not in sys.modules
