"""engine.Engine: OpenAI's Completions API on one loaded GGUF model."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, NamedTuple

from .model import Model  # isort: skip  (first: llama_cpp is imported before numpy, see model.py)
from .choice import ChoiceState
from .constraint import ConstraintFactory, RowConstraint
from .completion import ChunkBuilder, ResponseMeta, build_response
from .errors import CompletionError
from .loader import resolve_model_path
from .logprobs import LogprobFormatter
from .model_identity import file_identity
from .numerics.fingerprint import engine_inputs, fingerprint
from .numerics.verdict import warn_not_batch_invariant
from .loop import EngineLoop
from .params import CompletionParams, parse_params
from .prompts import PromptInput, assemble
from .sampler import ChoiceSampler, SamplingPlan
from .job import Job
from .speculative import parse_speculation
from .stops import StopMatcher
from .streams import AsyncCompletionStream, CompletionStream, wait_for_change
from .submission import Submission
from .types import Completion
from .version import __version__
from .work import Candidate, PromptWork


class Engine:
    """Loads a model (registry name, fetched on first use, or a .gguf path) and serves completions.

    Any number of threads may call `create_completion` at once, and asyncio code `acreate_completion`: requests
    made at the same time share every decode step (one engine loop thread owns the model), and each response
    is the same bytes as the request run alone.

    numerics: "exact" (default) keeps llama.cpp on kernels whose per-token results do not depend on the batch
    (`batch_invariant`); "fast" takes llama.cpp's stock fast paths, still seeded and correct in distribution
    but no longer neighbour-independent. One value per process (ggml reads it once): ValueError otherwise.

    Memory: `n_seq_max` KV sequences ("slots") of `n_ctx` cells each. A request uses one slot per candidate
    (n or best_of per prompt) while it runs; requests that find no free slot wait in a queue of `max_queue`.
    """

    def __init__(self, model: str | None = None, n_ctx: int | None = None, n_gpu_layers: int = 0,
                 n_threads: int | None = None, n_seq_max: int = 8, flash_attn: bool = False,
                 verbose: bool = False, aliases: tuple[str, ...] = (), prefix_cache: bool = True,
                 repack_weights: bool | None = None, max_queue: int = 64, step_tokens: int | None = None,
                 sample_threads: int | None = None, lazy_slots: bool = True, kv_cache_type: str = "f16",
                 numerics: str = "exact", speculative: str | None = None, draft_max: int = 8, ngram_min: int = 1,
                 ngram_max: int = 3):
        # speculative="prompt-lookup": draft tokens from the prompt and text so far by n-gram match and check
        # them in one step; the output is the same bytes as without (docs/speculative.md). Checked first.
        speculation = parse_speculation(speculative, draft_max, ngram_min, ngram_max)
        self.model_id, path = resolve_model_path(model, quiet=not verbose)
        # lazy_slots: KV memory for one sequence until more are needed at once (an embedded single caller
        # never pays for eight); the pool grows up to n_seq_max by re-creating the context when idle.
        self.model = Model(path, n_ctx=n_ctx, n_gpu_layers=n_gpu_layers, n_threads=n_threads,
                           n_seq_max=1 if lazy_slots else n_seq_max, flash_attn=flash_attn, verbose=verbose,
                           repack_weights=repack_weights, kv_cache_type=kv_cache_type, numerics=numerics)
        self.aliases = frozenset({self.model_id, str(path), path.name, *aliases})
        self.formatter = LogprobFormatter(self.model.token_name_bytes)
        try:
            self.loop = EngineLoop(self.model, prefix_cache=prefix_cache, step_tokens=step_tokens,
                                   max_queue=max_queue, sample_threads=sample_threads, max_slots=n_seq_max,
                                   speculation=speculation)
        except BaseException:
            self.model.close()
            raise
        try:
            # numerics="exact" promises it, "fast" gives it up: either way, measure what this build does. On
            # the loop thread, like every llama_decode: llama.cpp's CPU backend keeps an OpenMP thread team
            # per calling thread, and a second team made every later decode step 1.6x slower on 2 cores.
            self._batch_invariant = self.loop.call(self.model.check_batch_invariance)
        except BaseException:
            self.loop.close()
            self.model.close()
            raise
        if not self._batch_invariant:
            warn_not_batch_invariant(self.model_id, self.model.numerics)
        self.system_fingerprint = fingerprint(engine_inputs(self.model, file_identity(path), __version__,
                                                            self._batch_invariant, self.model.numerics))
        # acreate_completion validates and tokenizes here, off the event loop. One thread, started now, so
        # that the process's thread count does not move with requests (the server's tests check it).
        self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix="engine-prepare")
        self._prepare_thread.submit(lambda: None).result()

    # ---- the API ----------------------------------------------------------------------------------

    def submit(self, request: dict, on_change: Callable[[], None] | None = None,
               constraint: ConstraintFactory | None = None) -> Submission:
        """The one way into the engine: validate and tokenize `request` (a Completions body), queue it, and
        return its Submission at once. `on_change()` is called on the engine loop thread after every step that
        changed the request (keep it short: set an event). With stream=True, `take_chunks()` hands out its
        chunks; otherwise `result()` is the response. Raises CompletionError before any model work for an
        invalid request, and one with status 503 and code "engine_overloaded" when the queue is full.
        `constraint(i)` gives candidate i its own logits constraint (engine/constraint.py: structured output)."""
        return self._start(self._prepare(request, constraint), on_change)

    def create_completion(self, **request: Any) -> Completion | CompletionStream:
        """OpenAI Completions: returns the response dict, or an iterator of chunks with stream=True.
        Every invalid request raises CompletionError before any model work; a full queue raises one with
        status 503 and code "engine_overloaded" at once."""
        submission = self.submit(request)
        if request.get("stream"):
            return CompletionStream(submission)
        return submission.result()

    async def acreate_completion(self, **request: Any) -> Completion | AsyncCompletionStream:
        """The asyncio twin: `await` it for the response dict, or (stream=True) for an async iterator of chunks.
        Cancelling the awaiting task cancels the request. Validation and tokenization run in a worker thread:
        an 8 MB prompt takes ~2 s to tokenize, which would stall every other task on the event loop."""
        aloop = asyncio.get_running_loop()
        prepared = await aloop.run_in_executor(self._prepare_thread, self._prepare, request)
        changed = asyncio.Event()
        submission = self._start(prepared, lambda: aloop.call_soon_threadsafe(changed.set))
        if prepared.params.stream:
            return AsyncCompletionStream(submission, changed)
        try:
            while not submission.finished:
                await wait_for_change(submission, changed, submission.version)
        except BaseException:
            submission.cancel()
            raise
        return submission.result()

    def _start(self, prepared: "_Prepared", on_change: Callable[[], None] | None) -> Submission:
        params, work, meta = prepared
        chunks = ChunkBuilder(meta, params, work, self.formatter) if params.stream else None
        job = self.loop.submit(Job(work, listener=on_change, chunks=chunks))
        return Submission(job, self.loop, lambda: build_response(meta, params, work, self.formatter))

    def reset_prefix_cache(self) -> None:
        """Forget the KV cells that free slots keep as a prefix cache (results never depend on them)."""
        self.loop.reset_prefix_cache()

    @property
    def batch_invariant(self) -> bool:
        """Whether a response's bytes are independent of what shares its decode steps (batching, concurrency,
        prompt chunking), as measured on this build when the model loaded (Model.check_batch_invariance).
        True on the project's build with numerics="exact"; results are correct in distribution either way."""
        return self._batch_invariant

    @property
    def numerics(self) -> str:
        return self.model.numerics

    def stats(self) -> dict:
        """Requests running and queued, tokens generated, each slot's state (busy, cached tokens), memory,
        and the numerics: the `numerics` asked for and the measured `batch_invariant`."""
        return dict(self.loop.stats(), numerics=self.numerics, batch_invariant=self._batch_invariant)

    def memory(self) -> dict:
        """Bytes llama.cpp holds for this engine now: weights, KV cache (every slot), compute buffer."""
        return self.stats()["memory"]

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request is running, queued or being cancelled; False if `timeout` passed first."""
        return self.loop.wait_idle(timeout)

    def step_log(self) -> list:
        """What the most recent llama_decode steps held (scheduler.StepRecord), oldest first."""
        return self.loop.step_log()

    @property
    def n_seq_max(self) -> int:
        """Sequences (slots) decoded together at most: a request's candidates, or concurrent requests."""
        return self.loop.scheduler.max_slots

    def _prepare(self, request: dict, constraint: ConstraintFactory | None = None) -> "_Prepared":
        params = parse_params(request, self.model.n_vocab)
        if params.model is not None and params.model not in self.aliases:
            raise CompletionError(f"model {params.model!r} is not loaded (loaded: {self.model_id!r})",
                                  param="model", code="model_not_found", status=404)
        prompts = [assemble(self.model, self.model_id, p, params.suffix) for p in params.prompts]
        max_new = [self._max_new(params, p) for p in prompts]
        plan = SamplingPlan.from_params(params)
        work = [self._prompt_work(params, plan, p, m, constraint) for p, m in zip(prompts, max_new)]
        return _Prepared(params, work, ResponseMeta.new(params.model or self.model_id, self.system_fingerprint))

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

    def _prompt_work(self, params: CompletionParams, plan: SamplingPlan, prompt: PromptInput,
                     max_new: int, constraint: ConstraintFactory | None) -> PromptWork:
        stops = StopMatcher(params.stop)
        candidates = []
        for j in range(params.candidates):
            state = ChoiceState(max_new=max_new, stops=stops,
                                base_offset=len(prompt.text), keep_records=params.logprobs is not None)
            candidate = Candidate(prompt, state, ChoiceSampler(plan, j, self.model.n_vocab, max_new))
            if constraint is not None:
                candidate.constraint = RowConstraint(constraint(j), self.model.n_vocab, self.model.eog_tokens)
            candidates.append(candidate)
        want = params.logprobs if params.echo and params.logprobs is not None else None
        return PromptWork(prompt, candidates, want)

    # ---- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the loop (requests still running fail with RuntimeError), then free the model."""
        self.loop.close()
        self._prepare_thread.shutdown(wait=True)
        self.model.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Prepared(NamedTuple):
    """A validated, tokenized request: what to run and how to answer it."""
    params: CompletionParams
    work: list[PromptWork]
    meta: ResponseMeta
