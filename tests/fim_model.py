"""Writes a tiny llama-architecture GGUF (random weights) whose vocabulary declares fill-in-the-middle tokens."""
from pathlib import Path

import numpy as np

N_EMBD, N_FF, N_HEAD, N_CTX = 64, 128, 4, 256
SPECIALS = ["<unk>", "<s>", "</s>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
PRE, SUF, MID = 3, 4, 5


def vocabulary():
    tokens, scores, types = [], [], []
    for i, t in enumerate(SPECIALS):
        tokens.append(t)
        scores.append(0.0)
        types.append(2 if i == 0 else 3)  # UNKNOWN, CONTROL
    for b in range(256):  # byte fallback: any text can be tokenized
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(6)  # BYTE
    for word in ["▁", "▁def", "▁return", "▁x", "(", ")", ":", "a", "b", "c", "▁a", "▁b", "▁print"]:
        tokens.append(word)
        scores.append(-float(len(tokens)) / 100)
        types.append(1)  # NORMAL
    return tokens, scores, types


def write_fim_model(path: Path, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    tokens, scores, types = vocabulary()
    n_vocab = len(tokens)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(1)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_vocab_size(n_vocab)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_uint32("tokenizer.ggml.fim_pre_token_id", PRE)
    w.add_uint32("tokenizer.ggml.fim_suf_token_id", SUF)
    w.add_uint32("tokenizer.ggml.fim_mid_token_id", MID)

    def t(name, *shape, scale=0.2):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    t("token_embd.weight", n_vocab, N_EMBD)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, np.float32))
    t("output.weight", n_vocab, N_EMBD)
    w.add_tensor("blk.0.attn_norm.weight", np.ones(N_EMBD, np.float32))
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        t(f"blk.0.{name}.weight", N_EMBD, N_EMBD)
    w.add_tensor("blk.0.ffn_norm.weight", np.ones(N_EMBD, np.float32))
    t("blk.0.ffn_gate.weight", N_FF, N_EMBD)
    t("blk.0.ffn_up.weight", N_FF, N_EMBD)
    t("blk.0.ffn_down.weight", N_EMBD, N_FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
