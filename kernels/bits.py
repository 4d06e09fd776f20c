"""Reinterpret int32 <-> float32 bits inside numba code (one LLVM bitcast, so loops still vectorise).

Interpreted (NUMBA_DISABLE_JIT=1), the plain Python body runs instead."""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload


def int_bits_to_float(b):
    """The float32 whose bit pattern is the int32 b."""
    return np.array(b, np.int32).view(np.float32)[()]


@intrinsic
def _bitcast_i32_to_f32(typingctx, b):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@overload(int_bits_to_float, jit_options={"cache": True})
def _int_bits_to_float_jit(b):
    def impl(b):
        return _bitcast_i32_to_f32(np.int32(b))

    return impl


def float_to_int_bits(x):
    """The int32 bit pattern of the float32 x."""
    return np.array(x, np.float32).view(np.int32)[()]


@intrinsic
def _bitcast_f32_to_i32(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@overload(float_to_int_bits, jit_options={"cache": True})
def _float_to_int_bits_jit(x):
    def impl(x):
        return _bitcast_f32_to_i32(np.float32(x))

    return impl
