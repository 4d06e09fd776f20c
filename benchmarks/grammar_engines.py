"""Choose the structured-output grammar library by measurement: llguidance vs xgrammar (issue 29, deliverable 2).

Both libraries get their tokenizer from the GGUF vocabulary alone (token bytes from llama.cpp, tokens that render
no bytes marked special, end-of-generation ids as stop tokens): no Hugging Face files. The two libraries want
different environments (xgrammar pulls torch + transformers + triton, 2 GB), so the work is split into steps,
each in its own interpreter. Setup (see docs/structured-output-choice.md):

    python3 -m venv /work/llg-venv && /work/llg-venv/bin/pip install llguidance numpy jsonschema
    python3 -m venv /work/xgr-venv && /work/xgr-venv/bin/pip install torch==2.13.0 && \
        /work/xgr-venv/bin/pip install xgrammar numpy

    # 1. project venv: dump each registry model's vocabulary (token bytes, special ids, eos / end-of-generation
    #    ids) and the model tokenizer's token ids of the walked outputs (seconds)
    .venv/bin/python benchmarks/grammar_engines.py dump --out-dir /tmp
        -> /tmp/vocab_smollm2-135m.pkl, /tmp/vocab_gemma3-270m.pkl

    # 2. measure (about 20 s each; on a quiet machine)
    #    llguidance the way the engine would use it: its own llguidance.llamacpp adapter on the loaded GGUF
    #    (llama.cpp's tokenizer as its tokenize callback), run in the project venv with llguidance's
    #    site-packages appended to sys.path (nothing installed into the project venv):
    .venv/bin/python benchmarks/grammar_engines.py bench llguidance --tokenizer llamacpp \
        --llg-site /work/llg-venv/lib/python3.11/site-packages --out /tmp/ge_llg.json
    /work/xgr-venv/bin/python benchmarks/grammar_engines.py bench xgrammar --out /tmp/ge_xgr.json
    #    llguidance from the dumped bytes alone (TokenizerWrapper + a greedy Python tokenize callback):
    /work/llg-venv/bin/python benchmarks/grammar_engines.py bench llguidance --out /tmp/ge_llg_vocab.json
        (--rounds N: medians of N, default 5; --quick: 1 round, a smoke run; --models: a subset)

    # 3. anywhere: the Markdown tables of the result files
    python3 benchmarks/grammar_engines.py report /tmp/ge_llg.json /tmp/ge_xgr.json /tmp/ge_llg_vocab.json

What `bench` measures, per model (2 threads at most everywhere; medians of --rounds runs):
  tokenizer   building the library's tokenizer object from the vocabulary (ms)
  compile     per grammar (small schema, 50-property schema, date regex, choice of 5, Lark grammar, GBNF
              grammar): cold = compile + matcher + first mask with nothing cached; cached = what a content-hash
              cache hit costs (xgrammar: GrammarCompiler's own cache; llguidance, which has no compiled-grammar
              cache: deep_copy() of a kept matcher) + the first mask (ms). Each grammar's sample output must be
              accepted, with end-of-generation allowed after it.
  mask        walk a matcher through a valid output, tokenized by the model's own tokenizer: per token, the
              bitmask fill and the advance (accept) timed separately; median, p95 and mean in µs. Walks: the small
              schema with a 200-character free-text "name"; a full 50-property instance; the same instance under
              the 50-property schema without its maxLength bounds. First walk (fresh compile) and later walks (new
              matchers from the cache) reported apart, with the slowest positions. Every walked token is checked
              to be allowed by the mask just filled, and end-of-generation to be allowed only at the end.
  batch8      8 matchers stepping together through the small-schema walk with the library's parallel API
              (2 threads): µs per step for all 8 masks + all 8 advances
  coverage    JSON Schema keywords: each keyword's schema is compiled; if it compiles, its valid instances must be
              accepted and each invalid one (differing by that keyword) refused, else the keyword is reported as
              ignored (with any warning the library gave, native stderr included). Instances are tokenized
              greedily (longest match) from the vocabulary; where jsonschema is installed it checks the cases.
  install     MB of the library and everything it requires (recursively, from the installed files); import time

`bench` prints a summary per model and writes everything to --out as JSON; `report` turns result files into the
Markdown tables of docs/structured-output-choice.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("smollm2-135m", "gemma3-270m")
THREADS = 2

# ---- the grammars --------------------------------------------------------------------------------------------

SMALL_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                "required": ["name", "age"]}

# 200 characters of ordinary words: the free-text field of the mask walk.
FREE_TEXT = ("Margaret Elizabeth Thornton, the second daughter of a lighthouse keeper from the northern harbour "
             "town, who later taught history and music at the village school for nearly thirty years before she left")
assert len(FREE_TEXT) == 200, len(FREE_TEXT)
SMALL_INSTANCE = {"name": FREE_TEXT, "age": 42}


def fifty_schema() -> tuple[dict, dict]:
    """A 50-property object schema (string/integer/number/boolean/enum/array, all required) and a valid
    instance of it."""
    kinds = ["string", "integer", "number", "boolean", "enum", "array"]
    props, inst = {}, {}
    for i in range(50):
        kind = kinds[i % len(kinds)]
        name = f"field_{i:02d}_{kind}"
        if kind == "string":
            props[name] = {"type": "string", "maxLength": 40}
            inst[name] = f"value number {i}"
        elif kind == "integer":
            props[name] = {"type": "integer", "minimum": 0}
            inst[name] = i * 7
        elif kind == "number":
            props[name] = {"type": "number"}
            inst[name] = i + 0.25
        elif kind == "boolean":
            props[name] = {"type": "boolean"}
            inst[name] = i % 4 == 0
        elif kind == "enum":
            props[name] = {"enum": ["red", "green", "blue", "amber"]}
            inst[name] = ["red", "green", "blue", "amber"][i % 4]
        else:
            props[name] = {"type": "array", "items": {"type": "string"}, "maxItems": 3}
            inst[name] = ["a", f"b{i}"]
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}, inst


FIFTY_SCHEMA, FIFTY_INSTANCE = fifty_schema()
# The same schema with its strings unbounded (no maxLength): the same instance, to show what bounded strings cost.
FIFTY_UNBOUNDED = json.loads(json.dumps(FIFTY_SCHEMA).replace(', "maxLength": 40', ""))
assert "maxLength" not in json.dumps(FIFTY_UNBOUNDED)
DATE_REGEX = r"\d{4}-\d{2}-\d{2}"
CHOICES = ["positive", "negative", "neutral", "mixed", "unknown"]
LARK_GRAMMAR = r"""
start: expr
expr: term (("+" | "-") term)*
term: factor (("*" | "/") factor)*
factor: NUMBER | "(" expr ")"
NUMBER: /[0-9]+/
"""
GBNF_GRAMMAR = r"""
root ::= expr
expr ::= term (("+" | "-") term)*
term ::= factor (("*" | "/") factor)*
factor ::= [0-9]+ | "(" expr ")"
"""


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


# What each grammar's walk/acceptance sample is (a valid output).
GRAMMARS = {
    "small schema": ("json", SMALL_SCHEMA),
    "50-property schema": ("json", FIFTY_SCHEMA),
    "date regex": ("regex", DATE_REGEX),
    "choice of 5": ("choice", CHOICES),
    "Lark grammar": ("lark", LARK_GRAMMAR),
    "GBNF grammar": ("gbnf", GBNF_GRAMMAR),
}
SAMPLES = {"small schema": compact(SMALL_INSTANCE), "50-property schema": compact(FIFTY_INSTANCE),
           "date regex": "2024-02-29", "choice of 5": "neutral", "Lark grammar": "(12+3)*4-5/6",
           "GBNF grammar": "(12+3)*4-5/6"}
WALKS = ("small schema", "50-property schema")  # outputs tokenized by the model tokenizer in `dump`
# mask walks: name -> (grammar, the walked output's name in WALKS)
MASK_WALKS = {"small schema": (("json", SMALL_SCHEMA), "small schema"),
              "50-property schema": (("json", FIFTY_SCHEMA), "50-property schema"),
              "50-property, strings unbounded": (("json", FIFTY_UNBOUNDED), "50-property schema")}

# ---- JSON Schema keyword coverage: (keyword, schema, valid instances, invalid instances) ----------------------

_OBJ_A = {"type": "object", "properties": {"a": {"type": "integer"}}}
KEYWORDS = [
    ("type", {"type": "integer"}, [5], ["x", 1.5]),
    ("properties", {**_OBJ_A, "required": ["a"]}, [{"a": 1}], [{"a": "x"}]),
    ("required", {**_OBJ_A, "required": ["a"]}, [{"a": 1}], [{}]),
    ("additionalProperties: false", {**_OBJ_A, "additionalProperties": False}, [{"a": 1}], [{"a": 1, "b": 2}]),
    ("additionalProperties: schema", {"type": "object", "additionalProperties": {"type": "integer"}},
     [{"x": 1}], [{"x": "s"}]),
    ("additionalProperties unset (extras allowed)", _OBJ_A, [{"a": 1, "b": 2}], []),
    ("enum", {"enum": ["red", "green", 3]}, ["red", 3], ["blue", 4]),
    ("const", {"const": "abc"}, ["abc"], ["abd"]),
    ("anyOf", {"anyOf": [{"type": "integer"}, {"type": "boolean"}]}, [7, True], ["x"]),
    ("oneOf (disjoint branches)", {"oneOf": [{"type": "integer"}, {"type": "string"}]}, [7, "x"], [True]),
    ("oneOf (exclusivity: 1 matches both)", {"oneOf": [{"type": "integer"}, {"type": "number"}]}, [1.5], [1]),
    ("allOf", {"allOf": [{**_OBJ_A, "required": ["a"]},
                         {"type": "object", "properties": {"b": {"type": "string"}}, "required": ["b"]}]},
     [{"a": 1, "b": "x"}], [{"a": 1}, {"b": "x"}]),
    ("$ref / $defs", {"$defs": {"p": {"type": "integer"}}, "type": "object",
                      "properties": {"a": {"$ref": "#/$defs/p"}}, "required": ["a"]}, [{"a": 1}], [{"a": "x"}]),
    ("$ref recursive", {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["v"], "additionalProperties": False}}, "$ref": "#/$defs/node"},
     [{"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}], [{"v": 1, "kids": [{"v": "x"}]}]),
    ("items", {"type": "array", "items": {"type": "integer"}}, [[1, 2]], [[1, "x"]]),
    ("prefixItems", {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
     [[1, "a"]], [["a", 1], [1, "a", 2]]),
    ("minItems / maxItems", {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 3},
     [[1, 2], [1, 2, 3]], [[1], [1, 2, 3, 4]]),
    ("minLength / maxLength", {"type": "string", "minLength": 2, "maxLength": 4}, ["ab", "abcd"], ["a", "abcde"]),
    ("pattern", {"type": "string", "pattern": "^[a-z]+[0-9]$"}, ["abc1"], ["abc", "1abc1"]),
    ("pattern unanchored (JSON Schema: a search)", {"type": "string", "pattern": "[0-9]"}, ["ab1cd", "1"], ["abc"]),
    ("format: date", {"type": "string", "format": "date"}, ["2024-01-31"], ["2024-1-31", "hello"]),
    ("format: date-time", {"type": "string", "format": "date-time"}, ["2024-01-31T10:00:00Z"],
     ["2024-01-31", "hello"]),
    ("format: email", {"type": "string", "format": "email"}, ["ann@example.com"], ["not an email"]),
    ("format: uuid", {"type": "string", "format": "uuid"}, ["123e4567-e89b-12d3-a456-426614174000"], ["123"]),
    ("minimum / maximum", {"type": "integer", "minimum": 1, "maximum": 10}, [1, 10], [0, 11]),
    ("exclusiveMinimum", {"type": "number", "exclusiveMinimum": 0}, [0.5], [0, -1]),
    ("multipleOf", {"type": "integer", "multipleOf": 3}, [6], [7]),
    ("nullable: type [\"string\", \"null\"]", {"type": ["string", "null"]}, ["x", None], [5]),
    ("not", {"not": {"type": "string"}}, [5], ["x"]),
    # extras, beyond the issue's list
    ("uniqueItems", {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, [[1, 2]], [[1, 1]]),
    ("minProperties / maxProperties", {"type": "object", "additionalProperties": {"type": "integer"},
                                       "minProperties": 1, "maxProperties": 2}, [{"a": 1}], [{}, {"a": 1, "b": 2, "c": 3}]),
    ("patternProperties", {"type": "object", "patternProperties": {"^n_": {"type": "integer"}},
                           "additionalProperties": False}, [{"n_a": 1}], [{"n_a": "x"}, {"z": 1}]),
    ("if / then / else", {"type": "integer", "if": {"minimum": 10}, "then": {"multipleOf": 2}}, [12, 3], [13]),
]


# ---- step 1: the vocabulary dump (project venv, llama.cpp) ---------------------------------------------------

def dump(out_dir: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import llama_cpp  # noqa: F401  isort: skip  (before numpy, as engine.model requires)
    from engine.model import Model
    from engine.registry import load_registry

    entries = load_registry()[1]
    for name in MODELS:
        t0 = time.perf_counter()
        with Model(entries[name].path, n_ctx=256, n_seq_max=1) as m:
            tokens = [m.token_bytes(t) for t in range(m.n_vocab)]
            # A token that renders no bytes (control, unused) can never be text: special for both libraries.
            special = [t for t, b in enumerate(tokens) if not b]
            names = {t: m.token_name_bytes(t) for t in special}
            walks = {}
            for g in WALKS:
                ids = m.tokenize(SAMPLES[g], add_bos=False, special=False)
                assert m.detokenize(ids) == SAMPLES[g].encode(), g
                walks[g] = ids
            data = {"model": name, "file": entries[name].file, "n_vocab": m.n_vocab, "tokens": tokens,
                    "special": special, "special_names": names, "eos": m.eos, "bos": m.bos,
                    "eog": sorted(m.eog_tokens), "walks": walks}
        path = out_dir / f"vocab_{name}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        print(f"{name}: {len(tokens)} tokens, {len(special)} special, eos {data['eos']}, eog {data['eog']}, "
              f"walks {[len(v) for v in walks.values()]} tokens -> {path} ({time.perf_counter() - t0:.1f} s)")


def load_vocab(vocab_dir: Path, name: str) -> dict:
    return pickle.loads((vocab_dir / f"vocab_{name}.pkl").read_bytes())


class GreedyTokenizer:
    """Longest-match tokenization over the non-special vocabulary: every byte has a token in both registry
    vocabularies (byte-level BPE, SentencePiece byte fallback), so any byte string tokenizes."""

    def __init__(self, tokens: list[bytes], special: set[int]):
        self.ids: dict[bytes, int] = {}
        for t, b in enumerate(tokens):
            if t not in special and b and b not in self.ids:
                self.ids[b] = t
        self.maxlen = max(len(b) for b in self.ids)

    def __call__(self, data) -> list[int]:
        if isinstance(data, str):
            data = data.encode()
        out, i = [], 0
        while i < len(data):
            for n in range(min(self.maxlen, len(data) - i), 0, -1):
                t = self.ids.get(data[i:i + n])
                if t is not None:
                    out.append(t)
                    i += n
                    break
            else:
                raise ValueError(f"no token for byte {data[i]:#x}")
        return out


# ---- step 2: the two adapters --------------------------------------------------------------------------------

class LLGuidanceAdapter:
    """tokenizer="vocab": llguidance.TokenizerWrapper over the dumped token bytes, with a greedy Python tokenize
    callback (no llama.cpp in the venv). tokenizer="llamacpp": llguidance's own llguidance.llamacpp adapter on the
    loaded GGUF's llama_vocab, whose tokenize callback is llama.cpp's llama_tokenize (native, no GIL): the way
    the engine would use it. llguidance narrows the mask where the grammar forces bytes to the tokenize
    callback's tokenization of those bytes, so the callback must be the model's real tokenizer."""
    name = "llguidance"

    def __init__(self, tokenizer: str = "vocab"):
        self.tokenizer_mode = tokenizer
        if tokenizer == "llamacpp":  # the project venv: llama_cpp before numpy, as engine.model requires
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            import llama_cpp  # noqa: F401  isort: skip
            from engine.model import Model
            from engine.registry import load_registry
            self.Model, self.registry = Model, load_registry()[1]
            self.model = None
        t0 = time.perf_counter()
        import llguidance
        import llguidance.numpy  # noqa: F401
        self.import_s = time.perf_counter() - t0
        self.llg = llguidance
        self.version = llguidance.__version__
        self.site = Path(llguidance.__file__).resolve().parent.parent
        self.executor = llguidance.LLExecutor(num_threads=THREADS)

    def build_tokenizer(self, v: dict):
        llg = self.llg
        special = set(v["special"])
        greedy = GreedyTokenizer(v["tokens"], special)
        self.greedy = greedy
        self.n_vocab = v["n_vocab"]
        self.eos = v["eos"]
        if self.tokenizer_mode == "llamacpp":
            from llguidance.llamacpp import lltokenizer_from_vocab
            if self.model is None or self.model.path.name != v["file"]:
                if self.model is not None:
                    self.model.close()
                self.model = self.Model(self.registry[v["model"]].path, n_ctx=256, n_seq_max=1)
            self.tok = lltokenizer_from_vocab(self.model._vocab)
            assert self.tok.eos_token == v["eos"], (self.tok.eos_token, v["eos"])
            return self.tok

        class Vocab:  # what llguidance.TokenizerWrapper reads
            tokens = [v["special_names"][t] if t in special else b for t, b in enumerate(v["tokens"])]
            eos_token_id = v["eos"]
            bos_token_id = v["bos"]
            special_token_ids = sorted(special)

            def __call__(self, data):
                return greedy(data)

        self.tok = llg.LLTokenizer(llg.TokenizerWrapper(Vocab()))
        return self.tok

    def grammar_text(self, kind: str, src) -> str:
        M = self.llg.LLMatcher
        if kind == "json":
            return M.grammar_from_json_schema(json.dumps(src))
        if kind == "regex":
            return M.grammar_from_regex(src)
        if kind == "choice":
            return M.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in src))
        if kind == "lark":
            return M.grammar_from_lark(src)
        if kind == "gbnf":
            from llguidance.gbnf_to_lark import gbnf_to_lark
            return M.grammar_from_lark(gbnf_to_lark(src))
        raise ValueError(kind)

    def compile(self, kind: str, src):
        """A ready matcher (raises on grammar errors)."""
        m = self.llg.LLMatcher(self.tok, self.grammar_text(kind, src), log_level=0)
        if m.is_error():
            raise ValueError(m.get_error())
        return m

    def warnings(self, compiled) -> list[str]:
        return list(compiled.get_grammar_warnings())

    def from_cache(self, template):
        return template.deep_copy()

    def new_matcher(self, compiled):
        return compiled.deep_copy()

    def alloc(self, rows: int = 1):
        return self.llg.numpy.allocate_token_bitmask(rows, self.n_vocab)

    def fill(self, matcher, mask, row: int = 0) -> None:
        self.llg.numpy.fill_next_token_bitmask(matcher, mask, row)

    def advance(self, matcher, token: int) -> bool:
        return matcher.consume_token(token)

    def fill_batch(self, matchers, mask) -> None:
        self.llg.numpy.fill_next_token_bitmask_par(self.executor, [(m, i) for i, m in enumerate(matchers)], mask)

    def advance_batch(self, matchers, token: int) -> list[bool]:
        return self.executor.consume_token_par([(m, token) for m in matchers])

    def stop_ids(self) -> list[int]:
        return [self.eos]


class XGrammarAdapter:
    name = "xgrammar"

    def __init__(self):
        t0 = time.perf_counter()
        import xgrammar
        self.import_s = time.perf_counter() - t0
        self.xgr = xgrammar
        self.site = Path(xgrammar.__file__).resolve().parent.parent
        from importlib.metadata import version
        self.version = version("xgrammar")
        self.batch = xgrammar.BatchGrammarMatcher(max_threads=THREADS)

    def build_tokenizer(self, v: dict):
        xgr = self.xgr
        special = set(v["special"])
        # xgrammar marks a token special when its bytes are empty: control tokens already render empty.
        vocab = [b"" if t in special else b for t, b in enumerate(v["tokens"])]
        self.info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=v["n_vocab"],
                                      stop_token_ids=list(v["eog"]), add_prefix_space=False)
        self.compiler = xgr.GrammarCompiler(self.info, max_threads=THREADS, cache_enabled=True)
        self.n_vocab = v["n_vocab"]
        self.eog = list(v["eog"])
        self.greedy = GreedyTokenizer(v["tokens"], special)
        return self.info

    def compile(self, kind: str, src):
        c = self.compiler
        if kind == "json":
            return c.compile_json_schema(json.dumps(src))
        if kind == "regex":
            return c.compile_regex(src)
        if kind == "choice":
            return c.compile_grammar("root ::= " + " | ".join(json.dumps(x) for x in src))
        if kind == "lark":
            return c.compile_lark(src)
        if kind == "gbnf":
            return c.compile_grammar(src)
        raise ValueError(kind)

    def warnings(self, compiled) -> list[str]:
        return []

    def from_cache(self, kind_src):
        kind, src = kind_src
        return self.compile(kind, src)  # a hit in GrammarCompiler's cache

    def new_matcher(self, compiled):
        return self.xgr.GrammarMatcher(compiled)

    def alloc(self, rows: int = 1):
        import numpy as np
        return np.full((rows, (self.n_vocab + 31) // 32), -1, dtype=np.int32)  # DLPack: numpy works

    def fill(self, matcher, mask, row: int = 0) -> None:
        matcher.fill_next_token_bitmask(mask, row)

    def advance(self, matcher, token: int) -> bool:
        return matcher.accept_token(token)

    def fill_batch(self, matchers, mask) -> None:
        self.batch.batch_fill_next_token_bitmask(matchers, mask)

    def advance_batch(self, matchers, token: int) -> list[bool]:
        return self.xgr.BatchGrammarMatcher.batch_accept_token(matchers, [token] * len(matchers))

    def stop_ids(self) -> list[int]:
        return self.eog


def allowed(mask, token: int, row: int = 0) -> bool:
    return bool((int(mask[row, token >> 5]) >> (token & 31)) & 1)


@contextlib.contextmanager
def captured_stderr():
    """Collect what native code writes to fd 2 (xgrammar's C++ warnings) into a list of lines."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            lines.extend(x for x in f.read().decode(errors="replace").splitlines() if x.strip())


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# ---- step 2: the measurements --------------------------------------------------------------------------------

def measure_compile(ad, rounds: int) -> dict:
    out = {}
    for gname, (kind, src) in GRAMMARS.items():
        cold, cold_first_mask, cached = [], [], []
        mask = ad.alloc()
        for _ in range(rounds):
            if ad.name == "xgrammar":
                ad.compiler.clear_cache()
            t0 = time.perf_counter()
            compiled = ad.compile(kind, src)
            matcher = ad.new_matcher(compiled) if ad.name == "xgrammar" else compiled
            t1 = time.perf_counter()
            ad.fill(matcher, mask)
            t2 = time.perf_counter()
            cold.append(t2 - t0)
            cold_first_mask.append(t2 - t1)
            # cached: xgrammar's compiler cache hit; llguidance: deep_copy of the kept (already used) matcher
            t0 = time.perf_counter()
            hit = ad.from_cache((kind, src) if ad.name == "xgrammar" else compiled)
            m2 = ad.new_matcher(hit) if ad.name == "xgrammar" else hit
            ad.fill(m2, mask)
            cached.append(time.perf_counter() - t0)
        out[gname] = {"cold_ms": 1e3 * statistics.median(cold), "cold_first_mask_ms": 1e3 * statistics.median(cold_first_mask),
                      "cached_ms": 1e3 * statistics.median(cached), "cold_all_ms": [1e3 * x for x in cold]}
        # the sample output must be accepted, end-of-generation allowed after it
        ok, why = accepts(ad, compiled if ad.name == "xgrammar" else compiled, ad.greedy(SAMPLES[gname]))
        out[gname]["sample_accepted"] = ok
        if not ok:
            out[gname]["sample_problem"] = why
    return out


def accepts(ad, compiled, tokens: list[int]) -> tuple[bool, str]:
    """Whether the grammar accepts exactly these tokens followed by end-of-generation."""
    m = ad.new_matcher(compiled)
    mask = ad.alloc()
    for i, t in enumerate(tokens):
        if not ad.advance(m, t):
            return False, f"token {i} ({t}) rejected"
    ad.fill(m, mask)
    if not any(allowed(mask, s) for s in ad.stop_ids()):
        return False, "end-of-generation not allowed at the end"
    return True, ""


def walk(ad, matcher, tokens: list[int]) -> tuple[list[float], list[float], list[str]]:
    mask = ad.alloc()
    fills, advs, problems = [], [], []
    stops = ad.stop_ids()
    pc = time.perf_counter
    for i, t in enumerate(tokens):
        t0 = pc()
        ad.fill(matcher, mask)
        t1 = pc()
        ok = ad.advance(matcher, t)
        t2 = pc()
        fills.append(t1 - t0)
        advs.append(t2 - t1)
        if not allowed(mask, t):
            problems.append(f"token {i} ({t}) not in its mask")
        if i and any(allowed(mask, s) for s in stops):
            problems.append(f"end-of-generation allowed at token {i}")
        if not ok:
            problems.append(f"token {i} ({t}) rejected")
            break
    ad.fill(matcher, mask)
    if not any(allowed(mask, s) for s in stops):
        problems.append("end-of-generation not allowed at the end")
    return fills, advs, problems


def summarize(fills, advs) -> dict:
    tot = [a + b for a, b in zip(fills, advs)]
    return {"n": len(tot), "mean_us": 1e6 * statistics.fmean(tot), "fill_med_us": 1e6 * statistics.median(fills), "fill_p95_us": 1e6 * pct(fills, 0.95),
            "adv_med_us": 1e6 * statistics.median(advs), "adv_p95_us": 1e6 * pct(advs, 0.95),
            "med_us": 1e6 * statistics.median(tot), "p95_us": 1e6 * pct(tot, 0.95), "max_us": 1e6 * max(tot)}


def measure_mask(ad, v: dict, rounds: int) -> dict:
    out = {}
    for g, ((kind, src), sample) in MASK_WALKS.items():
        tokens = v["walks"][sample]
        first_f, first_a, later_f, later_a, problems = [], [], [], [], []
        by_index: list[list[float]] = [[] for _ in tokens]
        for r in range(max(rounds, 2)):
            if ad.name == "xgrammar":
                ad.compiler.clear_cache()
            compiled = ad.compile(kind, src)  # a fresh compile: the first walk on it is the cold one
            f, a, p = walk(ad, ad.new_matcher(compiled), tokens)
            first_f += f
            first_a += a
            problems += p
            for _ in range(3):
                matcher = ad.new_matcher(ad.from_cache((kind, src)) if ad.name == "xgrammar" else compiled)
                f, a, p = walk(ad, matcher, tokens)
                later_f += f
                later_a += a
                problems += p
                for i, (x, y) in enumerate(zip(f, a)):
                    by_index[i].append(x + y)
        # where the time goes: the slowest positions (median over the later walks), with the text before them
        med = [statistics.median(x) if x else 0.0 for x in by_index]
        slow = sorted(range(len(tokens)), key=lambda i: -med[i])[:6]
        text = [v["tokens"][t] for t in tokens]
        slowest = [{"i": i, "us": round(1e6 * med[i], 1), "before": b"".join(text[max(0, i - 4):i]).decode(errors="replace"),
                    "token": text[i].decode(errors="replace")} for i in slow]
        out[g] = {"tokens": len(tokens), "first": summarize(first_f, first_a), "later": summarize(later_f, later_a),
                  "problems": sorted(set(problems))[:10], "slowest": slowest}
    # 8 rows in parallel through the small-schema walk
    kind, src = GRAMMARS["small schema"]
    tokens = v["walks"]["small schema"]
    compiled = ad.compile(kind, src)
    steps = []
    for _ in range(max(rounds, 2)):
        matchers = [ad.new_matcher(compiled) for _ in range(8)]
        mask = ad.alloc(8)
        for t in tokens:
            t0 = time.perf_counter()
            ad.fill_batch(matchers, mask)
            oks = ad.advance_batch(matchers, t)
            steps.append(time.perf_counter() - t0)
            assert all(oks) and allowed(mask, t, 7)
    out["batch8"] = {"step_med_us": 1e6 * statistics.median(steps), "step_p95_us": 1e6 * pct(steps, 0.95)}
    return out


def measure_coverage(ad) -> dict:
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    out = {}
    for kw, schema, valid, invalid in KEYWORDS:
        case_check = "unchecked (no jsonschema)"
        if jsonschema is not None:  # the cases themselves must be right (formats: where jsonschema can check)
            val = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            wrong = [x for x in valid if not val.is_valid(x)] + [x for x in invalid if val.is_valid(x)]
            case_check = f"jsonschema disagrees on {wrong}" if wrong else "jsonschema agrees"
        with captured_stderr() as err:
            try:
                compiled = ad.compile("json", schema)
                error = None
            except Exception as e:  # noqa: BLE001  (the libraries raise ValueError / RuntimeError)
                compiled, error = None, f"{type(e).__name__}: {e}"
        if compiled is None:
            out[kw] = {"verdict": "error", "detail": " ".join(error.split())[:300], "case_check": case_check}
            continue
        warn = ad.warnings(compiled) + err
        bad_valid = [compact(x) for x in valid if not accepts(ad, compiled, ad.greedy(compact(x)))[0]]
        let_through = [compact(x) for x in invalid if accepts(ad, compiled, ad.greedy(compact(x)))[0]]
        if bad_valid:
            verdict = "rejects valid"
        elif let_through:
            verdict = "ignored, warns" if warn else "ignored silently"
        else:
            verdict = "enforced"
        out[kw] = {"verdict": verdict, "rejected_valid": bad_valid, "accepted_invalid": let_through,
                   "warnings": [" ".join(w.split())[:300] for w in warn][:3], "case_check": case_check}
    return out


def install_weight(site: Path) -> dict:
    """MB per distribution installed in `site` (the library's site-packages)."""
    from importlib.metadata import distributions
    dists = {}
    for d in distributions(path=[str(site)]):
        size = 0
        for f in d.files or []:
            try:
                size += os.path.getsize(d.locate_file(f))
            except OSError:
                pass
        dists[d.metadata["Name"]] = {"version": d.version, "mb": size / 2**20}
    for skip in ("pip", "setuptools", "wheel"):
        dists.pop(skip, None)
    # the library's required closure: Requires-Dist followed recursively, extras and unmet markers skipped
    import re
    norm = {re.sub(r"[-_.]+", "-", k).lower(): k for k in dists}
    reqs = {}
    for d in distributions(path=[str(site)]):
        reqs[re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower()] = d.requires or []
    lib = "llguidance" if "llguidance" in norm else "xgrammar"
    closure, todo = set(), [lib]
    while todo:
        n = todo.pop()
        if n in closure or n not in norm:
            continue
        closure.add(n)
        for r in reqs.get(n, []):
            name, _, marker = r.partition(";")
            if "extra" in marker:
                continue
            if marker.strip():
                try:  # e.g. python_version / sys_platform markers
                    from packaging.markers import Marker
                    if not Marker(marker.strip()).evaluate():
                        continue
                except ImportError:
                    pass
            todo.append(re.sub(r"[-_.]+", "-", re.match(r"\s*([A-Za-z0-9._-]+)", name).group(1)).lower())
    need = sorted((norm[n] for n in closure), key=lambda k: -dists[k]["mb"])
    return {"total_mb": sum(x["mb"] for x in dists.values()), "library": lib,
            "closure": need, "closure_mb": sum(dists[k]["mb"] for k in need),
            "dists": dict(sorted(dists.items(), key=lambda kv: -kv[1]["mb"]))}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def bench(lib: str, vocab_dir: Path, out: Path, rounds: int, models: list[str], tokenizer: str) -> None:
    for var in ("OMP_NUM_THREADS", "RAYON_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(THREADS))
    ad = LLGuidanceAdapter(tokenizer) if lib == "llguidance" else XGrammarAdapter()
    label = f"{lib} {ad.version}" + (" (llama.cpp tokenizer)" if lib == "llguidance" and tokenizer == "llamacpp"
                                     else " (vocab + greedy tokenizer)" if lib == "llguidance" else "")
    res = {"lib": lib, "label": label, "tokenizer": tokenizer if lib == "llguidance" else "vocab",
           "version": ad.version, "import_s": ad.import_s, "python": platform.python_version(),
           "cpu": cpu_name(), "cpus": os.cpu_count(), "threads": THREADS, "rounds": rounds,
           "loadavg_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"),
           "install": install_weight(ad.site), "models": {}}
    print(f"{label}: import {ad.import_s:.2f} s, site-packages {res['install']['total_mb']:.0f} MB, "
          f"cpu {res['cpu']}, load {res['loadavg_start']}")
    for name in models:
        v = load_vocab(vocab_dir, name)
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            ad.build_tokenizer(v)
            times.append(time.perf_counter() - t0)
        r = {"n_vocab": v["n_vocab"], "special": len(v["special"]), "eog": v["eog"],
             "tokenizer_ms": 1e3 * statistics.median(times), "tokenizer_all_ms": [1e3 * t for t in times]}
        r["compile"] = measure_compile(ad, rounds)
        r["mask"] = measure_mask(ad, v, rounds)
        r["coverage"] = measure_coverage(ad)
        res["models"][name] = r
        print(f"  {name} (vocab {v['n_vocab']}): tokenizer {r['tokenizer_ms']:.0f} ms")
        for g, c in r["compile"].items():
            print(f"    compile {g:20s} cold {c['cold_ms']:9.2f} ms   cached {c['cached_ms']:8.3f} ms"
                  f"   sample ok {c['sample_accepted']}")
        for g in MASK_WALKS:
            m = r["mask"][g]
            print(f"    mask {g:30s} later med {m['later']['med_us']:7.1f} p95 {m['later']['p95_us']:7.1f} "
                  f"mean {m['later']['mean_us']:7.1f} µs"
                  f" | first med {m['first']['med_us']:7.1f} p95 {m['first']['p95_us']:7.1f} µs"
                  f" | {m['tokens']} tokens {m['problems'] or 'ok'}")
            print("      slowest: " + "; ".join(f"{x['us']:.0f} µs at {x['before']!r}+{x['token']!r}" for x in m["slowest"][:4]))
        print(f"    batch8 step med {r['mask']['batch8']['step_med_us']:.1f} µs")
        verdicts = {}
        for kw, c in r["coverage"].items():
            verdicts.setdefault(c["verdict"], []).append(kw)
        for k, kws in verdicts.items():
            print(f"    coverage {k}: {', '.join(kws)}")
    res["loadavg_end"] = os.getloadavg()
    out.write_text(json.dumps(res, indent=1))
    print(f"-> {out}")


# ---- step 3: Markdown ----------------------------------------------------------------------------------------


def _grid(L: list, keys, models, runs, cell, lead=lambda m, g: "") -> None:
    """One Markdown row per (key, model): `| key | model | lead | cell(run) | ... |`."""
    for g in keys:
        for m in models:
            L.append(f"| {g} | {m} | {lead(m, g)}" + " | ".join(cell(r, m, g) for r in runs) + " |")

def report(paths: list[Path]) -> str:
    runs = [json.loads(p.read_text()) for p in paths]
    models = [m for m in MODELS if all(m in r["models"] for r in runs)]
    def short(r: dict) -> str:
        if r["lib"] == "xgrammar":
            return "xgrammar"
        return "llguidance" + (" (greedy tok.)" if r.get("tokenizer") == "vocab" else "")
    libs = [short(r) for r in runs]
    L = []
    r0 = runs[0]
    when = ", ".join(f"{r.get('label', r['lib'])} run {r['date']} (1-min load {r['loadavg_start'][0]:.2f} → {r['loadavg_end'][0]:.2f})"
                     for r in runs)
    L.append(f"Machine: {r0['cpu']}, {r0['cpus']} CPUs, Python {r0['python']}, {r0['threads']} threads, "
             f"medians of {r0['rounds']} rounds; {when}.")
    L.append("")
    L.append("Columns: " + "; ".join(f"**{short(r)}** = {r.get('label', r['lib'])}" for r in runs) + ".")
    L.append("")
    L.append("Tokenizer build from the GGUF vocabulary (ms):")
    L.append("")
    L.append("| model (vocab) | " + " | ".join(libs) + " |")
    L.append("|---|" + "---|" * len(runs))
    for m in models:
        L.append(f"| {m} ({runs[0]['models'][m]['n_vocab']:,}) | " +
                 " | ".join(f"{r['models'][m]['tokenizer_ms']:.0f}" for r in runs) + " |")
    L.append("")
    L.append("Compile, cold (compile + matcher + first mask, nothing cached) and cached (a content-hash cache hit "
             "+ first mask), ms:")
    L.append("")
    L.append("| grammar | model | " + " | ".join(f"{x} cold | {x} cached" for x in libs) + " |")
    L.append("|---|---|" + "---|---|" * len(runs))
    def compile_cell(r, m, g):
        c = r["models"][m]["compile"][g]
        flag = "" if c["sample_accepted"] else " (sample rejected!)"
        return f"{c['cold_ms']:.2f}{flag} | {c['cached_ms']:.3f}"
    _grid(L, GRAMMARS, models, runs, compile_cell)
    L.append("")
    L.append("Mask per token (fill the bitmask + advance on the token), µs, median / p95; 'later' = matchers from "
             "the cache, 'first' = the first walk after a fresh compile:")
    L.append("")
    L.append("| walk | model | tokens | " + " | ".join(f"{x} later | {x} first" for x in libs) + " |")
    L.append("|---|---|---|" + "---|---|" * len(runs))
    def mask_cell(r, m, g):
        x = r["models"][m]["mask"][g]
        bad = " (problems!)" if x["problems"] else ""
        return (f"{x['later']['med_us']:.1f} / {x['later']['p95_us']:.1f} (mean {x['later']['mean_us']:.0f}){bad} | "
                f"{x['first']['med_us']:.1f} / {x['first']['p95_us']:.1f}")
    _grid(L, MASK_WALKS, models, runs, mask_cell, lead=lambda m, g: f"{runs[0]['models'][m]['mask'][g]['tokens']} | ")
    L.append("")
    L.append("Split of the 'later' walks, µs, median / p95 (fill | advance):")
    L.append("")
    L.append("| walk | model | " + " | ".join(f"{x} fill | {x} advance" for x in libs) + " |")
    L.append("|---|---|" + "---|---|" * len(runs))
    def split_cell(r, m, g):
        x = r["models"][m]["mask"][g]["later"]
        return f"{x['fill_med_us']:.1f} / {x['fill_p95_us']:.1f} | {x['adv_med_us']:.1f} / {x['adv_p95_us']:.1f}"
    _grid(L, MASK_WALKS, models, runs, split_cell)
    L.append("")
    L.append("Eight rows stepping together (small-schema walk, the library's parallel API on 2 threads), µs per "
             "step for all 8 masks + 8 advances, median / p95:")
    L.append("")
    L.append("| model | " + " | ".join(libs) + " |")
    L.append("|---|" + "---|" * len(runs))
    for m in models:
        L.append(f"| {m} | " + " | ".join(
            f"{r['models'][m]['mask']['batch8']['step_med_us']:.1f} / {r['models'][m]['mask']['batch8']['step_p95_us']:.1f}"
            for r in runs) + " |")
    L.append("")
    L.append("JSON Schema keyword coverage (same on both vocabularies unless marked; 'enforced' = compiles, the valid "
             "instances pass and every invalid one is refused; 'ignored' = compiles but lets an invalid instance "
             "through; 'error' = compile error):")
    L.append("")
    L.append("| keyword | " + " | ".join(libs) + " |")
    L.append("|---|" + "---|" * len(runs))
    for kw, *_ in KEYWORDS:
        cells = []
        for r in runs:
            per = {m: r["models"][m]["coverage"][kw] for m in models}
            c = per[models[0]]
            text = c["verdict"]
            if c["verdict"] == "error":
                text += f": {c['detail'][:120]}"
            elif c.get("accepted_invalid"):
                text += f" (let through {', '.join('`' + x + '`' for x in c['accepted_invalid'])})"
            if c.get("rejected_valid"):
                text += f" (refused {', '.join('`' + x + '`' for x in c['rejected_valid'])})"
            if len({per[m]["verdict"] for m in models}) > 1:
                text += " [differs by model: " + ", ".join(f"{m}: {per[m]['verdict']}" for m in models) + "]"
            cells.append(text.replace("|", "\\|"))
        L.append(f"| {kw} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("Install weight (MB of installed files: the library with everything it requires, recursively) and "
             "import time (in a fresh interpreter, except the llama.cpp-tokenizer run, which had numpy loaded):")
    L.append("")
    L.append("| library | MB with requirements | distributions (MB) | import s |")
    L.append("|---|---|---|---|")
    for r in runs:
        ins = r["install"]
        top = ", ".join(f"{k} {ins['dists'][k]['mb']:.1f}" for k in ins.get("closure", [])[:8])
        more = len(ins.get("closure", [])) - 8
        top += f", +{more} more" if more > 0 else ""
        L.append(f"| {r.get('label', r['lib'])} | {ins.get('closure_mb', ins['total_mb']):.0f} | {top} | {r['import_s']:.2f} |")
    return "\n".join(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="project venv: write vocab_<model>.pkl")
    d.add_argument("--out-dir", type=Path, default=Path("/tmp"))
    b = sub.add_parser("bench", help="a library's venv: measure it")
    b.add_argument("lib", choices=["llguidance", "xgrammar"])
    b.add_argument("--vocab-dir", type=Path, default=Path("/tmp"))
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--rounds", type=int, default=5)
    b.add_argument("--quick", action="store_true", help="1 round (a smoke run)")
    b.add_argument("--models", nargs="+", default=list(MODELS))
    b.add_argument("--tokenizer", choices=["vocab", "llamacpp"], default="vocab",
                   help="llguidance only: llamacpp = llguidance.llamacpp on the GGUF (run in the project venv)")
    b.add_argument("--llg-site", type=Path, help="a site-packages dir holding llguidance, appended to sys.path "
                   "(to run --tokenizer llamacpp in the project venv without installing llguidance there)")
    r = sub.add_parser("report", help="Markdown tables from bench result files")
    r.add_argument("results", type=Path, nargs="+")
    a = ap.parse_args()
    if a.cmd == "dump":
        dump(a.out_dir)
    elif a.cmd == "bench":
        if a.llg_site:
            sys.path.append(str(a.llg_site))  # after this venv's own packages: its numpy stays first
        bench(a.lib, a.vocab_dir, a.out, 1 if a.quick else a.rounds, a.models, a.tokenizer)
    else:
        print(report(a.results))


if __name__ == "__main__":
    main()
