"""Two LLVM-level helpers the hot loops need, each with a plain-Python body for NUMBA_DISABLE_JIT=1.

- wide_vectors(): marks the jitted function that calls it "prefer-vector-width"="512". LLVM otherwise
  vectorises at 256 bits on AVX-512 CPUs; the exp and max passes run ~1.5x faster at 512. Where the CPU has
  narrower vectors LLVM splits the operations, with the same results.
- fma32(a, b, c): a*b + c rounded once, as an explicit llvm.fma. Kernels use no fastmath: the contraction and
  reassociation it allows are decided per compilation, and a function compiled in-process then summed and
  rounded differently from the same function loaded from numba's cache. Explicit FMAs and fixed summation
  orders give the same bits whatever compiles them.
"""
import numpy as np
from numba import types
from numba.core import config
from numba.extending import intrinsic


@intrinsic
def _prefer_512(typingctx):
    def codegen(context, builder, signature, args):
        attrs = builder.function.attributes
        # llvmlite only validates enum attributes; string attributes are written through as they are.
        set.add(attrs, '"prefer-vector-width"="512"')
        set.add(attrs, '"min-legal-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


def _python_fma32(a, b, c):
    """float32(a*b + c) with one rounding (a*b is exact in float64; the sum rounds there first, which can
    differ from the jitted result in the last bit in rare cases, interpreted only)."""
    return np.float32(np.float64(a) * np.float64(b) + np.float64(c))


@intrinsic
def _fma_f32(typingctx, a, b, c):
    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


# Called directly (not through an overload, whose own function would receive the attribute instead of the
# caller): in jitted code wide_vectors() marks the calling kernel and fma32 takes float32 arguments.
if config.DISABLE_JIT:
    def wide_vectors():
        """Interpreted: nothing to mark."""

    fma32 = _python_fma32
else:
    wide_vectors = _prefer_512
    fma32 = _fma_f32
