#!/usr/bin/env python3
"""Independent NumPy reference forward pass for Llama / Qwen2 / Qwen3 checkpoints.

It shares no code with Vortex: GGUF files are read and dequantized with the `gguf` PyPI package,
Hugging Face directories with `safetensors` + config.json. The whole prompt is run at once
(no KV cache) in float64 by default, and the logits are written as raw little-endian float32.

    reference_forward.py --model PATH --tokens 1,2,3 --out logits.f32 [--all-positions]

  --model          a .gguf file or a Hugging Face directory (config.json + *.safetensors)
  --tokens         comma-separated prompt token ids
  --out            output file: float32 LE, [vocab] for the last position, or [T, vocab] with
                   --all-positions (row t = logits after token t)
  --dtype          float64 (default) or float32 compute

Llama-style GGUF files store Q/K rows permuted for adjacent-pair RoPE; this script undoes the
permutation and uses half-split (NEOX) RoPE everywhere, so it checks Vortex's adjacent-pair path
against a different formulation of the same math.

Manual checks (not used by tests): --prompt TEXT [--chat] tokenizes with the `tokenizers` package
from the GGUF vocabulary (GPT-2 style byte-level BPE; SmolLM2's digit splitting), and
--generate N greedily continues and prints the decoded tokens.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Config:
    arch: str  # llama | qwen2 | qwen3
    vocab: int
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    theta: float
    rope_scaling: str = "none"  # none | linear | llama3
    rope_factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position: int = 8192
    tokens: list = field(default_factory=list)  # GGUF vocabulary (for --prompt / printing)
    merges: list = field(default_factory=list)
    token_types: list = field(default_factory=list)
    pre: str = ""


# ----------------------------------------------------------------------------------------------
# Loading


def load_gguf(path: str, dtype) -> tuple[Config, dict]:
    from gguf import GGUFReader
    from gguf.quants import dequantize

    r = GGUFReader(path)

    def meta(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    arch = meta("general.architecture")
    if arch not in ("llama", "qwen2", "qwen3"):
        raise SystemExit(f"{path}: unsupported architecture {arch!r}")
    a = arch + "."
    heads = int(meta(a + "attention.head_count"))
    hidden = int(meta(a + "embedding_length"))
    tokens = meta("tokenizer.ggml.tokens", [])
    cfg = Config(
        arch=arch,
        vocab=len(tokens),
        hidden=hidden,
        ffn=int(meta(a + "feed_forward_length")),
        layers=int(meta(a + "block_count")),
        heads=heads,
        kv_heads=int(meta(a + "attention.head_count_kv", heads)),
        head_dim=int(meta(a + "attention.key_length", hidden // heads)),
        eps=float(meta(a + "attention.layer_norm_rms_epsilon")),
        theta=float(meta(a + "rope.freq_base", 10000.0)),
        tokens=list(tokens),
        merges=list(meta("tokenizer.ggml.merges", [])),
        token_types=list(meta("tokenizer.ggml.token_type", [])),
        pre=meta("tokenizer.ggml.pre", ""),
    )
    scaling = meta(a + "rope.scaling.type", "none")
    if scaling == "linear":
        cfg.rope_scaling, cfg.rope_factor = "linear", float(meta(a + "rope.scaling.factor"))
    elif scaling != "none":
        raise SystemExit(f"{path}: unsupported rope scaling {scaling!r}")

    w = {}
    rope_freqs = None
    for t in r.tensors:
        shape = tuple(int(d) for d in reversed(t.shape))  # GGUF dims are innermost first
        v = dequantize(t.data, t.tensor_type).reshape(shape).astype(dtype)
        if t.name == "rope_freqs.weight":
            rope_freqs = v
            continue
        name = t.name[: -len(".weight")] if t.name.endswith(".weight") else t.name
        w[name] = v
    if cfg.vocab == 0:
        cfg.vocab = w["token_embd"].shape[0]
    if rope_freqs is not None:
        cfg.rope_scaling = "freqs"
        w["rope_freqs"] = rope_freqs
    if arch == "llama":  # undo the converter's Q/K row permutation (adjacent pairs -> half split)
        for i in range(cfg.layers):
            for n, h in (("attn_q", cfg.heads), ("attn_k", cfg.kv_heads)):
                m = w[f"blk.{i}.{n}"]
                d = cfg.head_dim
                m = m.reshape(h, d // 2, 2, *m.shape[1:]).swapaxes(1, 2).reshape(m.shape)
                w[f"blk.{i}.{n}"] = m
    return cfg, w


HF_NAMES = {
    "model.embed_tokens.weight": "token_embd",
    "model.norm.weight": "output_norm",
    "lm_head.weight": "output",
}
HF_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm",
    "self_attn.q_proj.weight": "attn_q",
    "self_attn.k_proj.weight": "attn_k",
    "self_attn.v_proj.weight": "attn_v",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output",
    "self_attn.q_norm.weight": "attn_q_norm",
    "self_attn.k_norm.weight": "attn_k_norm",
    "post_attention_layernorm.weight": "ffn_norm",
    "mlp.gate_proj.weight": "ffn_gate",
    "mlp.up_proj.weight": "ffn_up",
    "mlp.down_proj.weight": "ffn_down",
}


def hf_name(name: str) -> str | None:
    if name in HF_NAMES:
        return HF_NAMES[name]
    parts = name.split(".", 3)
    if len(parts) == 4 and parts[0] == "model" and parts[1] == "layers":
        rest = HF_LAYER_NAMES.get(parts[3])
        if rest is not None:
            return f"blk.{int(parts[2])}.{rest}"
    return None


def load_hf(path: str, dtype) -> tuple[Config, dict]:
    from safetensors.numpy import load_file

    with open(os.path.join(path, "config.json")) as f:
        c = json.load(f)
    archs = c.get("architectures") or []
    arch = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2",
            "Qwen3ForCausalLM": "qwen3"}.get(archs[0] if archs else "", c.get("model_type"))
    if arch not in ("llama", "qwen2", "qwen3"):
        raise SystemExit(f"{path}: unsupported architecture {archs or c.get('model_type')}")
    heads = c["num_attention_heads"]
    cfg = Config(
        arch=arch,
        vocab=c["vocab_size"],
        hidden=c["hidden_size"],
        ffn=c["intermediate_size"],
        layers=c["num_hidden_layers"],
        heads=heads,
        kv_heads=c.get("num_key_value_heads") or heads,
        head_dim=c.get("head_dim") or c["hidden_size"] // heads,
        eps=c.get("rms_norm_eps", 1e-6),
        theta=c.get("rope_theta", 10000.0),
    )
    rs = c.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type", "default"))
        if kind == "linear":
            cfg.rope_scaling, cfg.rope_factor = "linear", rs["factor"]
        elif kind == "llama3":
            cfg.rope_scaling, cfg.rope_factor = "llama3", rs["factor"]
            cfg.low_freq_factor = rs.get("low_freq_factor", 1.0)
            cfg.high_freq_factor = rs.get("high_freq_factor", 4.0)
            cfg.original_max_position = rs.get("original_max_position_embeddings", 8192)
        elif kind != "default":
            raise SystemExit(f"{path}: unsupported rope_scaling {kind!r}")

    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.exists(os.path.join(path, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        files = sorted(p for p in os.listdir(path) if p.endswith(".safetensors"))
    w = {}
    for fn in files:
        for name, arr in load_file(os.path.join(path, fn)).items():
            canon = hf_name(name)
            if canon is not None:
                w[canon] = arr.astype(dtype)
    if c.get("tie_word_embeddings", False):
        w.pop("output", None)
    return cfg, w


def load(path: str, dtype) -> tuple[Config, dict]:
    if os.path.isdir(path):
        return load_hf(path, dtype)
    return load_gguf(path, dtype)


# ----------------------------------------------------------------------------------------------
# Forward


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def inv_freq(cfg: Config, w: dict, dtype):
    d = cfg.head_dim
    f = 1.0 / (cfg.theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    if cfg.rope_scaling == "linear":
        f = f / cfg.rope_factor
    elif cfg.rope_scaling == "freqs":  # GGUF Llama-3: per-pair divisors
        f = f / w["rope_freqs"].astype(np.float64)
    elif cfg.rope_scaling == "llama3":
        low_wl = cfg.original_max_position / cfg.low_freq_factor
        high_wl = cfg.original_max_position / cfg.high_freq_factor
        wl = 2 * math.pi / f
        smooth = (cfg.original_max_position / wl - cfg.low_freq_factor) / (
            cfg.high_freq_factor - cfg.low_freq_factor)
        blended = (1 - smooth) * f / cfg.rope_factor + smooth * f
        f = np.where(wl < high_wl, f, np.where(wl > low_wl, f / cfg.rope_factor, blended))
    return f.astype(dtype)


def rope_half_split(x, cos, sin):
    # x: [T, H, D]; pairs (i, i + D/2)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def forward(cfg: Config, w: dict, tokens: list[int], dtype) -> np.ndarray:
    """Logits [T, vocab] for the prompt `tokens` (positions 0..T-1)."""
    T, H, Hkv, D = len(tokens), cfg.heads, cfg.kv_heads, cfg.head_dim
    G = H // Hkv
    x = w["token_embd"][np.asarray(tokens)].astype(dtype)  # [T, hidden]
    ang = np.arange(T, dtype=np.float64)[:, None] * inv_freq(cfg, w, np.float64)[None, :]
    cos = np.cos(ang).astype(dtype)[:, None, :]  # [T, 1, D/2]
    sin = np.sin(ang).astype(dtype)[:, None, :]
    mask = np.triu(np.full((T, T), -np.inf, dtype=dtype), k=1)
    scale = 1.0 / math.sqrt(D)
    for i in range(cfg.layers):
        p = f"blk.{i}."
        h = rms_norm(x, w[p + "attn_norm"], cfg.eps)
        q, k, v = h @ w[p + "attn_q"].T, h @ w[p + "attn_k"].T, h @ w[p + "attn_v"].T
        if cfg.arch == "qwen2":
            q, k, v = q + w[p + "attn_q.bias"], k + w[p + "attn_k.bias"], v + w[p + "attn_v.bias"]
        q, k, v = q.reshape(T, H, D), k.reshape(T, Hkv, D), v.reshape(T, Hkv, D)
        if cfg.arch == "qwen3":
            q = rms_norm(q, w[p + "attn_q_norm"], cfg.eps)
            k = rms_norm(k, w[p + "attn_k_norm"], cfg.eps)
        q, k = rope_half_split(q, cos, sin), rope_half_split(k, cos, sin)
        out = np.empty((T, H, D), dtype=dtype)
        for hq in range(H):
            kv = hq // G
            s = (q[:, hq, :] @ k[:, kv, :].T) * scale + mask  # [T, T]
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            out[:, hq, :] = (s / s.sum(axis=-1, keepdims=True)) @ v[:, kv, :]
        x = x + out.reshape(T, H * D) @ w[p + "attn_output"].T
        h = rms_norm(x, w[p + "ffn_norm"], cfg.eps)
        gate = h @ w[p + "ffn_gate"].T
        x = x + ((gate / (1.0 + np.exp(-gate))) * (h @ w[p + "ffn_up"].T)) @ w[p + "ffn_down"].T
    x = rms_norm(x, w["output_norm"], cfg.eps)
    return x @ w.get("output", w["token_embd"]).T


# ----------------------------------------------------------------------------------------------
# Manual-check helpers: a tokenizer built from the GGUF vocabulary with `tokenizers`


def gguf_tokenizer(cfg: Config):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(cfg.tokens)}
    merges = [tuple(m.split(" ", 1)) for m in cfg.merges]
    tk = Tokenizer(models.BPE(vocab, merges))
    pre = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if cfg.pre == "smollm":
        pre.insert(0, pre_tokenizers.Digits(individual_digits=True))
    tk.pre_tokenizer = pre_tokenizers.Sequence(pre)
    tk.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(cfg.tokens, cfg.token_types) if ty == 3]
    tk.add_special_tokens(specials)
    return tk


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", help="comma-separated prompt token ids")
    ap.add_argument("--prompt", help="text prompt (manual checks; GGUF vocabularies only)")
    ap.add_argument("--chat", action="store_true", help="wrap --prompt in ChatML")
    ap.add_argument("--out", help="write logits here (float32 LE)")
    ap.add_argument("--all-positions", action="store_true")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--generate", type=int, default=0, help="greedy tokens to print")
    args = ap.parse_args()
    dtype = np.float64 if args.dtype == "float64" else np.float32

    cfg, w = load(args.model, dtype)
    tk = None
    if args.prompt is not None:
        tk = gguf_tokenizer(cfg)
        text = args.prompt
        if args.chat:
            text = f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"
        ids = tk.encode(text).ids
    elif args.tokens:
        ids = [int(t) for t in args.tokens.split(",") if t.strip()]
    else:
        ap.error("give --tokens or --prompt")
    if not ids or min(ids) < 0 or max(ids) >= cfg.vocab:
        ap.error(f"token ids must lie in [0, {cfg.vocab})")

    logits = forward(cfg, w, ids, dtype)
    if args.out:
        out = logits if args.all_positions else logits[-1]
        out.astype("<f4").tofile(args.out)
    if args.generate:
        if tk is None and cfg.tokens:
            tk = gguf_tokenizer(cfg)
        gen = []
        cur = list(ids)
        nxt = int(np.argmax(logits[-1]))
        for _ in range(args.generate):
            gen.append(nxt)
            if cfg.tokens and cfg.tokens[nxt] in ("<|im_end|>", "<|endoftext|>"):
                break
            cur.append(nxt)
            nxt = int(np.argmax(forward(cfg, w, cur, dtype)[-1]))
        print("prompt ids:", ids)
        print("generated ids:", gen)
        if cfg.tokens:
            print("generated tokens:", [cfg.tokens[t] for t in gen])
        if tk is not None:
            print("decoded:", repr(tk.decode(gen, skip_special_tokens=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
