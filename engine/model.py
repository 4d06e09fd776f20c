"""The GGUF backend: owns llama.cpp's model and context handles through llama-cpp-python's low-level API.

Exposes tokenization (with the model's BOS rule), per-token bytes, special tokens, and one batched
decode where every token carries its sequence id and whether its logits are wanted; the result is a
zero-copy float32 view of just those rows of llama.cpp's logits buffer (valid until the next decode).
"""
from __future__ import annotations

# llama_cpp must be imported before numpy: the other order crashed model loading on the GPU machine.
import llama_cpp  # isort: skip

import atexit
import ctypes
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .gguf_check import check_gguf_file
from .numerics.process import (buffer_mib, capturing_log, check_numerics, claim_numerics, ensure_backend,
                               set_verbose, system_info)

_live_models: "weakref.WeakSet[Model]" = weakref.WeakSet()


@atexit.register
def _close_all_models() -> None:
    # Free handles while llama_cpp is still importable: __del__ at interpreter teardown can segfault.
    for model in list(_live_models):
        model.close()


KV_CACHE_TYPES = {"f16": 1, "q8_0": 8, "f32": 0}  # ggml type ids (f32: a high-precision reference)


@dataclass(frozen=True)
class FimTokens:
    prefix: int
    suffix: int
    middle: int


class Model:
    """A loaded GGUF model plus one llama.cpp context holding up to `n_seq_max` KV sequences of `n_ctx`
    tokens each.

    Each sequence has its own KV stream (llama.cpp's non-unified cache): a sequence's logits are then
    bit-identical whether it is decoded alone or batched with others, which is what lets n > 1 share
    llama_decode calls without changing any choice. (With one unified cache, batching sequences changed
    logits by up to 1.1 here.) Memory: n_seq_max * n_ctx KV cells.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_ctx: int | None = None,
        n_gpu_layers: int = 0,
        n_threads: int | None = None,
        n_seq_max: int = 4,
        flash_attn: bool = False,
        verbose: bool = False,
        repack_weights: bool | None = None,
        kv_cache_type: str = "f16",
        numerics: str = "exact",
    ):
        self.path = Path(path)
        check_numerics(numerics)
        check_gguf_file(self.path)
        claim_numerics(numerics)  # a file that is not a model claims nothing
        self.numerics = numerics
        set_verbose(verbose)
        ensure_backend()
        self._model = None
        self._ctx = None

        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        # llama.cpp repacks some quantized weights (Q4_0, Q4_1 via AMX, Q4_K, IQ4_NL, ...) into interleaved
        # layouts whose matrix-matrix and matrix-vector kernels sum in different orders: a prompt's logits
        # then depend on how many of its tokens share a micro-batch. Without it, with llamafile off and the
        # tiled matmul off (numerics.process), every row is the same bits however it is batched.
        amx_crash = "LLAMAFILE = 1" not in system_info() and "AMX_INT8 = 1" in system_info()
        if repack_weights is None:  # by numerics: "fast" repacks where that is safe
            repack_weights = numerics == "fast" and not amx_crash
        if repack_weights and amx_crash:
            raise ValueError("repack_weights=True: llama.cpp's AMX repacked kernels crash in a build without "
                             "llamafile (GGML_LLAMAFILE=OFF); use a build with llamafile (./dev builds one) for "
                             "repacked weights")
        mparams.use_extra_bufts = repack_weights
        self.repack_weights = repack_weights
        with capturing_log() as log:
            self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            from .errors import ModelFileError

            raise ModelFileError(f"llama.cpp could not load {self.path} (corrupt or unsupported GGUF)")
        self.model_bytes = int(buffer_mib(log, "model") * 2**20)
        _live_models.add(self)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self._model)
        if kv_cache_type not in KV_CACHE_TYPES:
            self.close()
            raise ValueError(f"kv_cache_type must be one of {', '.join(KV_CACHE_TYPES)}, got {kv_cache_type!r}")
        self.kv_cache_type = kv_cache_type
        # llama.cpp stores a quantized V cache only with flash attention.
        self.flash_attn = flash_attn or kv_cache_type not in ("f16", "f32")
        self._threads = n_threads or max(1, os.cpu_count() or 1)
        # The compute buffer grows with the micro-batch (98 MB at 512 tokens for SmolLM2): on a CPU a
        # 256-token micro-batch prefills as fast, and chunking never changes logits. GPUs like bigger ones.
        self.on_gpu = n_gpu_layers > 0
        self._n_ubatch = 512 if self.on_gpu else 256
        self._per_seq = n_ctx or min(self.n_ctx_train, 4096)
        self._create_context(n_seq_max)

        self.bos = llama_cpp.llama_vocab_bos(self._vocab)
        self.eos = llama_cpp.llama_vocab_eos(self._vocab)
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab)) and self.bos >= 0
        self.eog_tokens = frozenset(
            t for t in range(self.n_vocab) if llama_cpp.llama_vocab_is_eog(self._vocab, t))
        pre, suf, mid = (llama_cpp.llama_vocab_fim_pre(self._vocab), llama_cpp.llama_vocab_fim_suf(self._vocab),
                         llama_cpp.llama_vocab_fim_mid(self._vocab))
        self.fim = FimTokens(pre, suf, mid) if min(pre, suf, mid) >= 0 else None
        self._piece_cache: dict[int, bytes] = {}  # filled from any thread; a dict store is atomic
        self._batch_capacity = 0
        self._grow_batch(512)
        self.decode_threads: set[int] = set()  # idents of the threads that called decode

    # ---- context --------------------------------------------------------------------------------

    def _context_params(self, n_seq_max: int, per_seq: int, n_batch: int, n_ubatch: int):
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = per_seq * n_seq_max
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_ubatch
        cparams.n_seq_max = n_seq_max
        cparams.kv_unified = False
        cparams.n_threads = self._threads
        cparams.n_threads_batch = self._threads
        cparams.no_perf = True
        # Off by default like llama-cpp-python's Llama, so greedy outputs agree with it bit for bit.
        cparams.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn
                                   else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        cparams.type_k = cparams.type_v = KV_CACHE_TYPES[self.kv_cache_type]
        return cparams

    def _create_context(self, n_seq_max: int) -> None:
        # The engine loop chunks every prompt to fit one step of n_batch tokens (one token per running
        # sequence plus prompt chunks), so n_batch does not grow with the context.
        cparams = self._context_params(n_seq_max, self._per_seq, max(512, n_seq_max + 1), self._n_ubatch)
        with capturing_log() as log:
            self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            self.close()
            raise RuntimeError(f"llama.cpp could not create a context of {n_seq_max} x {self._per_seq} tokens")
        self.kv_bytes = int(buffer_mib(log, "KV") * 2**20)
        self.compute_bytes = int(buffer_mib(log, "compute") * 2**20)
        self.n_ctx = llama_cpp.llama_n_ctx_seq(self._ctx)  # per sequence
        self.n_seq_max = n_seq_max
        self.n_batch = llama_cpp.llama_n_batch(self._ctx)  # llama.cpp caps it at the total context
        self._memory = llama_cpp.llama_get_memory(self._ctx)

    def set_sequences(self, n_seq_max: int) -> None:
        """Re-create the context for `n_seq_max` KV sequences (memory grows with it); every sequence's cells
        are lost. Each sequence has its own KV stream, so logits do not depend on how many there are."""
        llama_cpp.llama_free(self._ctx)
        self._ctx = None
        self._create_context(n_seq_max)

    def memory(self) -> dict:
        """Bytes llama.cpp allocated: weights, KV cache (all sequences), compute buffer."""
        return {"model_bytes": self.model_bytes, "kv_bytes": self.kv_bytes, "compute_bytes": self.compute_bytes,
                "n_seq_max": self.n_seq_max, "n_ctx_per_seq": self.n_ctx, "kv_cache_type": self.kv_cache_type}

    # ---- batch invariance, checked on this build ---------------------------------------------------

    PROBE_TEXT = "The quick brown fox jumps over the lazy dog near the river"
    PROBE_OTHER = "In a galaxy far away a small ship drifted past two moons"

    def check_batch_invariance(self) -> bool:
        """True when a token's logits do not depend on what shares its llama_decode, as measured here.

        Build flags do not decide this (a user's own build, a patched kernel, an environment switch, a GPU
        backend can each change it), so the kernels are asked: a short token list's logits, evaluated in one
        call, token by token, and token by token beside another sequence's tokens, must be the same bits.
        The list is long enough (10+ tokens) to reach every CPU path that depends on the batch size
        (llamafile's tinyBLAS takes 2+ rows, the tiled K-quant matmul 8+). It runs in a small context of
        its own with this model's settings, so no KV cell of the engine's context is touched. Cost: 25 small
        decodes (one of 12 tokens, 12 of one, 12 of two)."""
        tokens = self.tokenize(self.PROBE_TEXT)[:12]
        other = self.tokenize(self.PROBE_OTHER)[:len(tokens)]
        n = min(len(tokens), len(other))
        tokens, other = tokens[:n], other[:n]
        main_ctx, main_memory = self._ctx, self._memory
        cparams = self._context_params(2, 64, 64, 64)
        with capturing_log():
            probe = llama_cpp.llama_init_from_model(self._model, cparams)
        if not probe:
            raise RuntimeError("llama.cpp could not create the 2 x 64-token context of the invariance check")
        try:
            self._ctx, self._memory = probe, llama_cpp.llama_get_memory(probe)
            whole = np.array(self.decode(tokens, range(n), [0] * n, [True] * n))
            self.seq_remove(0)
            # each decode overwrites the view the previous one returned: copy every row as it comes
            alone = np.array([self.decode([t], [i], [0], [True])[0].copy() for i, t in enumerate(tokens)])
            self.seq_remove(0)
            beside = np.array([self.decode([o, t], [i, i], [1, 0], [True, True])[1].copy()
                               for i, (t, o) in enumerate(zip(tokens, other))])
            return bool(np.array_equal(whole, alone) and np.array_equal(whole, beside))
        finally:
            self._ctx, self._memory = main_ctx, main_memory
            llama_cpp.llama_free(probe)

    # ---- tokens ---------------------------------------------------------------------------------

    def tokenize(self, text: str | bytes, add_bos: bool | None = None, special: bool = True) -> list[int]:
        """Tokenize text. `add_bos=None` follows the GGUF's rule; `special` parses control-token text."""
        data = text.encode("utf-8") if isinstance(text, str) else text
        add = self.add_bos if add_bos is None else add_bos
        cap = len(data) + 8
        while True:
            out = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), out, cap, add, special)
            if n >= 0:
                return list(out[:n])
            cap = -n

    def token_bytes(self, token: int) -> bytes:
        """The bytes a token renders to (control tokens render empty), cached per token."""
        piece = self._piece_cache.get(token)
        if piece is None:  # a buffer per call: callers on several threads (prompt assembly, the loop)
            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
            piece = buf.raw[:n]
            self._piece_cache[token] = piece
        return piece

    def token_name_bytes(self, token: int) -> bytes:
        """Like token_bytes, but a control token that renders empty is spelled by name ("<|endoftext|>"),
        so logprob keys of distinct special tokens stay distinct and readable."""
        piece = self.token_bytes(token)
        if piece:
            return piece
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return buf.raw[:max(n, 0)]

    def detokenize(self, tokens) -> bytes:
        return b"".join(self.token_bytes(t) for t in tokens)

    # ---- decoding -------------------------------------------------------------------------------

    def _grow_batch(self, capacity: int) -> None:
        """(Re)allocate the batch arrays in NumPy memory; llama_batch points into them."""
        self._batch_capacity = capacity
        self._b_token = np.zeros(capacity, np.int32)
        self._b_pos = np.zeros(capacity, np.int32)
        self._b_nseq = np.ones(capacity, np.int32)
        self._b_seq = np.zeros(capacity, np.int32)
        self._b_logits = np.zeros(capacity, np.int8)
        # seq_id is an array of pointers, one per token, each to that token's single sequence id.
        self._b_seq_ptrs = (self._b_seq.ctypes.data + 4 * np.arange(capacity, dtype=np.uint64)).astype(np.uint64)
        batch = llama_cpp.llama_batch()
        batch.token = self._b_token.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token))
        batch.embd = None
        batch.pos = self._b_pos.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_pos))
        batch.n_seq_id = self._b_nseq.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))
        batch.seq_id = ctypes.cast(self._b_seq_ptrs.ctypes.data,
                                   ctypes.POINTER(ctypes.POINTER(llama_cpp.llama_seq_id)))
        batch.logits = self._b_logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
        self._batch = batch

    def decode(self, tokens, positions, seq_ids, want_logits) -> np.ndarray:
        """Evaluate a batch: token i goes to sequence seq_ids[i] at positions[i].

        Returns a read-only (n_wanted, n_vocab) float32 view of llama.cpp's logits for the tokens whose
        `want_logits` flag is set, in batch order. The view is invalidated by the next decode.
        """
        n = len(tokens)
        if n == 0:
            return np.empty((0, self.n_vocab), np.float32)
        if n > self.n_batch:
            raise ValueError(f"batch of {n} tokens exceeds the batch size ({self.n_batch})")
        if n > self._batch_capacity:
            self._grow_batch(max(n, 2 * self._batch_capacity))
        self._b_token[:n] = tokens
        self._b_pos[:n] = positions
        self._b_seq[:n] = seq_ids
        self._b_logits[:n] = want_logits
        self._batch.n_tokens = n
        self.decode_threads.add(threading.get_ident())  # one is the rule (EngineLoop.call): tests check it
        rc = llama_cpp.llama_decode(self._ctx, self._batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc} (1 = no KV-cache space for the batch)")
        n_out = int(np.count_nonzero(self._b_logits[:n]))
        if n_out == 0:
            return np.empty((0, self.n_vocab), np.float32)
        ptr = llama_cpp.llama_get_logits(self._ctx)
        view = np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab))
        view.flags.writeable = False
        return view

    # ---- KV-cache sequences ---------------------------------------------------------------------

    def seq_copy(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        llama_cpp.llama_memory_seq_cp(self._memory, src, dst, p0, p1)

    def seq_remove(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        return bool(llama_cpp.llama_memory_seq_rm(self._memory, seq, p0, p1))

    def seq_pos_max(self, seq: int) -> int:
        """Largest position held by `seq`, or -1 when the sequence is empty."""
        return llama_cpp.llama_memory_seq_pos_max(self._memory, seq)

    # ---- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None
        _live_models.discard(self)

    @property
    def closed(self) -> bool:
        return self._model is None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
