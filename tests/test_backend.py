"""The llama.cpp backend: tokenization, batched decode with per-token logit flags, KV sequences."""
import numpy as np

from engine.model import Model


def test_model_facts(model):
    assert model.n_vocab == 49152
    assert model.n_ctx == 4096
    assert model.eos in model.eog_tokens
    assert model.fim is None  # SmolLM2 declares no FIM tokens


def test_tokenize_follows_gguf_bos_rule(model):
    with_rule = model.tokenize("Hello world")
    plain = model.tokenize("Hello world", add_bos=False)
    if model.add_bos:
        assert with_rule == [model.bos] + plain
    else:
        assert with_rule == plain
    assert model.detokenize(plain) == b"Hello world"


def test_token_bytes_of_multibyte_text_reassemble(model):
    text = "naïve café — 日本語 🎉"
    tokens = model.tokenize(text, add_bos=False)
    assert model.detokenize(tokens).decode("utf-8") == text


def test_decode_returns_only_flagged_rows(model):
    tokens = model.tokenize("The quick brown fox", add_bos=False)
    n = len(tokens)
    model.seq_remove(0)
    flags = np.zeros(n, bool)
    flags[[1, n - 1]] = True
    rows = model.decode(tokens, np.arange(n), np.zeros(n, int), flags)
    assert rows.shape == (2, model.n_vocab) and rows.dtype == np.float32
    assert not rows.flags.writeable
    last = np.array(rows[1])
    model.seq_remove(0)
    # Same prefix with only the last row requested gives the same last row.
    again = model.decode(tokens, np.arange(n), np.zeros(n, int), np.arange(n) == n - 1)
    np.testing.assert_allclose(again[0], last, atol=1e-4)
    model.seq_remove(0)


def test_seq_copy_shares_prefix_and_remove_frees(model):
    p = model.tokenize("A B C D", add_bos=False)
    model.seq_remove(-1)
    model.decode(p, np.arange(len(p)), [0] * len(p), [False] * len(p))
    model.seq_copy(0, 3)
    assert model.seq_pos_max(3) == len(p) - 1
    model.seq_remove(3)
    assert model.seq_pos_max(3) == -1
    model.seq_remove(-1)
    assert model.seq_pos_max(0) == -1


def test_close_is_idempotent_and_context_manager(model_path):
    with Model(model_path, n_ctx=256) as m:
        assert not m.closed
    assert m.closed
    m.close()
