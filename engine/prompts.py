"""Prompt assembly: the four prompt forms, the model's BOS rule, and the fill-in-the-middle layout."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import CompletionError
from .model import Model


@dataclass(frozen=True)
class PromptInput:
    text: str  # what echo returns; completion text_offsets count from its length
    tokens: tuple[int, ...]  # what the model sees
    echo_start: int  # tokens[echo_start:echo_end] are the prompt's own tokens (for echo logprobs)
    echo_end: int


def assemble(model: Model, model_id: str, prompt: str | tuple[int, ...], suffix: str | None) -> PromptInput:
    if suffix is not None:
        return _fill_in_the_middle(model, model_id, prompt, suffix)
    if isinstance(prompt, tuple):  # token lists are used exactly as given
        text = model.detokenize(prompt).decode("utf-8", "replace")
        return PromptInput(text, prompt, 0, len(prompt))
    tokens = tuple(model.tokenize(prompt)) if prompt else ()
    if not tokens:  # "" (or text the tokenizer drops, like "\x04"): "as if from the beginning of a new document"
        start = model.bos if model.bos >= 0 else model.eos
        return PromptInput(prompt, (start,), 0, 1)
    return PromptInput(prompt, tokens, 0, len(tokens))


def _fill_in_the_middle(model: Model, model_id: str, prompt, suffix: str) -> PromptInput:
    if model.fim is None:
        raise CompletionError(f"model {model_id!r} has no fill-in-the-middle tokens, so `suffix` is not supported",
                              param="suffix", code="unsupported_parameter")
    fim = model.fim
    if isinstance(prompt, tuple):
        text, middle_prefix = model.detokenize(prompt).decode("utf-8", "replace"), list(prompt)
    else:
        text = prompt
        # special=False: user text cannot smuggle in FIM markers of its own
        middle_prefix = model.tokenize(prompt, add_bos=False, special=False) if prompt else []
    suffix_tokens = model.tokenize(suffix, add_bos=False, special=False) if suffix else []
    head = [model.bos] if model.add_bos else []
    tokens = head + [fim.prefix] + middle_prefix + [fim.suffix] + suffix_tokens + [fim.middle]
    start = len(head) + 1
    return PromptInput(text, tuple(tokens), start, start + len(middle_prefix))
