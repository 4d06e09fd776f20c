"""engine.Engine: OpenAI's Completions API on one loaded GGUF model."""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import llama_cpp  # isort: skip  (before numpy, see model.py)

import kernels

from . import __version__
from .choice import ChoiceState
from .completion import ResponseMeta, build_response, stream_chunks
from .decode import Candidate, Decoder, PromptWork
from .errors import CompletionError
from .loader import resolve_model_path
from .logprobs import LogprobFormatter
from .model import Model
from .params import CompletionParams, parse_params
from .prompts import PromptInput, assemble
from .registry import load_registry
from .sampler import ChoiceSampler, SamplingPlan
from .stops import StopMatcher
from .types import Completion, CompletionChunk


class Engine:
    """Loads a model (registry name, fetched on first use, or a .gguf path) and serves completions.

    Not meant for concurrent use from several threads at once: requests are serialised by a lock.
    """

    def __init__(self, model: str | None = None, n_ctx: int | None = None, n_gpu_layers: int = 0,
                 n_threads: int | None = None, n_seq_max: int = 4, flash_attn: bool = False,
                 verbose: bool = False, aliases: tuple[str, ...] = (), prefix_cache: bool = True,
                 repack_weights: bool = False):
        self.model_id, path = resolve_model_path(model, quiet=not verbose)
        self.model = Model(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads,
                           n_seq_max=n_seq_max, flash_attn=flash_attn, verbose=verbose,
                           repack_weights=repack_weights)
        self.aliases = frozenset({self.model_id, str(path), path.name, *aliases})
        self.workspace = kernels.Workspace(self.model.n_vocab)
        self.decoder = Decoder(self.model, self.workspace, prefix_cache=prefix_cache)
        self.decoder.warm_up()
        self.formatter = LogprobFormatter(self.model.token_name_bytes)
        self.system_fingerprint = self._fingerprint(path, n_gpu_layers, repack_weights)
        self._lock = threading.Lock()
        self._owner: int | None = None

    def _fingerprint(self, path, n_gpu_layers: int, repack_weights: bool) -> str:
        """Changes with the model file, the engine version or the backend (llama.cpp build, GPU offload,
        weight repacking: each can change logits)."""
        stat = path.stat()
        entry = next((e for e in load_registry()[1].values() if e.file == path.name and e.size == stat.st_size),
                     None)
        file_id = entry.sha256 if entry else f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        backend = f"llama-cpp-python {llama_cpp.__version__} gpu={n_gpu_layers > 0}"
        if repack_weights:
            backend += " repacked"
        digest = hashlib.sha256(f"{file_id}|{__version__}|{backend}".encode()).hexdigest()
        return f"fp_{digest[:10]}"

    # ---- the API ----------------------------------------------------------------------------------

    def create_completion(self, **request: Any) -> Completion | Iterator[CompletionChunk]:
        """OpenAI Completions: returns the response dict, or an iterator of chunks with stream=True.
        Every invalid request raises CompletionError before any model work."""
        params = parse_params(request, self.model.n_vocab)
        if params.model is not None and params.model not in self.aliases:
            raise CompletionError(f"model {params.model!r} is not loaded (loaded: {self.model_id!r})",
                                  param="model", code="model_not_found", status=404)
        prompts = [assemble(self.model, self.model_id, p, params.suffix) for p in params.prompts]
        max_new = [self._max_new(params, p) for p in prompts]
        plan = SamplingPlan.from_params(params)
        work = [self._prompt_work(params, plan, i, p, m) for i, (p, m) in enumerate(zip(prompts, max_new))]
        meta = ResponseMeta.new(params.model or self.model_id, self.system_fingerprint)
        if params.stream:
            return self._stream(meta, params, work)
        with self._exclusive():
            for _ in self.decoder.run(work):
                pass
        return build_response(meta, params, work, self.formatter)

    def _stream(self, meta, params, work) -> Iterator[CompletionChunk]:
        with self._exclusive():
            yield from stream_chunks(meta, params, work, self.formatter, self.decoder.run(work))

    @contextmanager
    def _exclusive(self):
        """One request at a time uses the model; other threads wait. A second request started in the thread
        that is still iterating a stream would wait forever, so it is refused instead."""
        me = threading.get_ident()
        if self._owner == me:
            raise CompletionError("another completion on this engine is still being streamed in this thread; "
                                  "finish or close it first", code="engine_busy", status=429)
        with self._lock:
            self._owner = me
            try:
                yield
            finally:
                self._owner = None

    # ---- request set-up ---------------------------------------------------------------------------

    def _max_new(self, params: CompletionParams, prompt: PromptInput) -> int:
        n_ctx, n_prompt = self.model.n_ctx, len(prompt.tokens)
        if params.max_tokens is None:
            if n_prompt >= n_ctx:
                raise CompletionError(
                    f"the prompt is {n_prompt} tokens but the context holds {n_ctx}: nothing can be generated",
                    param="prompt", code="context_length_exceeded")
            return n_ctx - n_prompt
        if n_prompt + params.max_tokens > n_ctx:
            raise CompletionError(
                f"the prompt ({n_prompt} tokens) plus max_tokens ({params.max_tokens}) exceeds the context "
                f"length ({n_ctx} tokens)", param="max_tokens", code="context_length_exceeded")
        return params.max_tokens

    def _prompt_work(self, params: CompletionParams, plan: SamplingPlan, index: int, prompt: PromptInput,
                     max_new: int) -> PromptWork:
        stops = StopMatcher(params.stop)
        candidates = []
        for j in range(params.candidates):
            state = ChoiceState(prompt_index=index, candidate=j, max_new=max_new, stops=stops,
                                base_offset=len(prompt.text), keep_records=params.logprobs is not None)
            candidates.append(Candidate(prompt, state, ChoiceSampler(plan, j, self.model.n_vocab, max_new)))
        want = params.logprobs if params.echo and params.logprobs is not None else None
        return PromptWork(prompt, candidates, want)

    # ---- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        self.model.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
