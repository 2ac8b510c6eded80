#!/usr/bin/env python3
"""PyTorch peer of `vortex bench decode`: a CUDA-graph-captured static-cache decode step.

The same model shape as vortex's synthetic presets (random bf16 weights), B requests at context L
with K/V in a contiguous static cache [B, H_kv, L + 1, D] per layer, one new token per request:
embedding -> per layer (RMSNorm, fused QKV GEMM, Qwen3 q/k norm, RoPE, K/V written into the cache,
SDPA over the L + 1 cached tokens (GQA by viewing the G query heads of a KV head as G query rows),
output projection, RMSNorm, fused gate/up GEMM, SiLU * up, down projection) -> final norm -> LM
head -> greedy argmax. The whole step is captured once and replayed; the replay time is the median
over groups of replays between CUDA events. tok/s = B / step time. The roofline bytes follow
BENCHMARKS.md (weights + every cached K/V page); the streaming-read bandwidth is measured here too
(a reduction over 4 GiB), so the ratio stands on its own.

  python3 bench/peers/torch_decode_step.py --model qwen3-1.7b --batch 32 --context 16384 \
      --json out.json
"""
import argparse
import json
import math
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# name: (layers, hidden, q heads, kv heads, head_dim, ffn, vocab, rope theta, tied, qk_norm)
PRESETS = {
    "qwen3-1.7b": (28, 2048, 16, 8, 128, 6144, 151936, 1e6, True, True),
    "qwen3-8b": (36, 4096, 32, 8, 128, 12288, 151936, 1e6, False, True),
    "llama-3.1-8b": (32, 4096, 32, 8, 128, 14336, 128256, 5e5, False, False),
    "smollm2-135m": (30, 576, 9, 3, 64, 1536, 49152, 1e5, True, False),
}


def rms_norm(x, w, eps=1e-6):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w).to(torch.bfloat16)


class Step:
    """Weights, the static cache and the buffers of one decode step (all preallocated)."""

    def __init__(self, shape, batch, context, layers, device):
        n_layers, hidden, hq, hkv, d, ffn, vocab, theta, tied, qk_norm = shape
        self.n_layers = layers if layers > 0 else n_layers
        self.hidden, self.hq, self.hkv, self.d, self.ffn, self.vocab = hidden, hq, hkv, d, ffn, vocab
        self.g = hq // hkv
        self.qk_norm = qk_norm
        self.batch, self.context = batch, context
        bf = dict(device=device, dtype=torch.bfloat16)
        gen = torch.Generator(device=device)
        gen.manual_seed(1)

        def rand(*s, scale):
            return (torch.rand(*s, generator=gen, **bf) * 2 - 1) * scale

        qkv_w = (hq + 2 * hkv) * d
        self.embed = rand(vocab, hidden, scale=math.sqrt(3.0 / hidden))
        self.lm_head = self.embed if tied else rand(vocab, hidden, scale=math.sqrt(3.0 / hidden))
        self.final_norm = torch.ones(hidden, device=device)
        self.layers = []
        for _ in range(self.n_layers):
            self.layers.append(dict(
                attn_norm=torch.ones(hidden, device=device),
                ffn_norm=torch.ones(hidden, device=device),
                q_norm=torch.ones(d, device=device),
                k_norm=torch.ones(d, device=device),
                qkv=rand(qkv_w, hidden, scale=math.sqrt(3.0 / hidden)),
                o=rand(hidden, hq * d, scale=math.sqrt(3.0 / (hq * d))),
                gate_up=rand(2 * ffn, hidden, scale=math.sqrt(3.0 / hidden)),
                down=rand(hidden, ffn, scale=math.sqrt(3.0 / ffn)),
                k=rand(batch, hkv, context + 1, d, scale=1.0),
                v=rand(batch, hkv, context + 1, d, scale=1.0),
            ))
        inv = 1.0 / (theta ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d))
        ang = float(context) * inv
        self.cos = torch.cat([ang.cos(), ang.cos()]).to(torch.bfloat16)  # half-split RoPE at pos L
        self.sin = torch.cat([ang.sin(), ang.sin()]).to(torch.bfloat16)
        self.tokens = torch.ones(batch, dtype=torch.long, device=device)
        self.next_tokens = torch.zeros(batch, dtype=torch.long, device=device)

    def rope(self, x):  # x [B, H, D]
        h = self.d // 2
        rot = torch.cat([-x[..., h:], x[..., :h]], dim=-1)
        return x * self.cos + rot * self.sin

    def __call__(self):
        b, hq, hkv, d, g, L = self.batch, self.hq, self.hkv, self.d, self.g, self.context
        x = self.embed[self.tokens]  # [B, hidden] bf16
        for w in self.layers:
            h = rms_norm(x, w["attn_norm"])
            qkv = h @ w["qkv"].t()
            q = qkv[:, : hq * d].view(b, hq, d)
            k = qkv[:, hq * d: (hq + hkv) * d].view(b, hkv, d)
            v = qkv[:, (hq + hkv) * d:].view(b, hkv, d)
            if self.qk_norm:
                q = rms_norm(q, w["q_norm"])
                k = rms_norm(k, w["k_norm"])
            q, k = self.rope(q), self.rope(k)
            w["k"][:, :, L] = k
            w["v"][:, :, L] = v
            qg = q.view(b, hkv, g, d)  # the G query heads of a KV head as G query rows
            o = F.scaled_dot_product_attention(qg, w["k"], w["v"])  # [B, H_kv, G, D]
            x = x + o.reshape(b, hq * d) @ w["o"].t()
            h = rms_norm(x, w["ffn_norm"])
            gu = h @ w["gate_up"].t()
            act = F.silu(gu[:, : self.ffn]) * gu[:, self.ffn:]
            x = x + act @ w["down"].t()
        logits = rms_norm(x, self.final_norm) @ self.lm_head.t()
        self.next_tokens.copy_(logits.argmax(-1))

    def bytes_per_step(self):
        weights = sum(t.numel() * 2 for w in self.layers for n, t in w.items() if n not in ("k", "v"))
        weights += self.lm_head.numel() * 2 + self.batch * self.hidden * 2
        pages = math.ceil((self.context + 1) / 16)  # BENCHMARKS.md counts whole pages of 16
        kv = self.n_layers * self.batch * self.hkv * pages * 16 * self.d * 2 * 2
        return weights, kv


def read_bandwidth_gbps(device):
    """Streaming read through a reduction over 4 GiB (median of timed passes)."""
    x = torch.ones(1 << 30, dtype=torch.float32, device=device)
    out = torch.empty((), dtype=torch.float32, device=device)
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for i in range(8):
        start.record()
        torch.sum(x, dim=0, out=out)  # PyTorch 2.11: out= needs an explicit dim
        stop.record()
        stop.synchronize()
        if i >= 2:
            times.append(start.elapsed_time(stop))
    del x, out
    torch.cuda.empty_cache()  # the 4 GiB go back before the 60 GB cache is allocated
    return (4 << 30) / (statistics.median(times) * 1e-3) / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen3-1.7b", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--context", type=int, default=16384)
    ap.add_argument("--layers", type=int, default=0, help="fewer layers (0: all)")
    ap.add_argument("--groups", type=int, default=15)
    ap.add_argument("--per-group", type=int, default=4)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_decode_step: no CUDA device", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    if args.quick:
        args.groups, args.per_group = 5, 2
    bw = read_bandwidth_gbps(dev)
    step = Step(PRESETS[args.model], args.batch, args.context, args.layers, dev)
    torch.cuda.synchronize()
    with torch.inference_mode():
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        for _ in range(3):
            graph.replay()
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        t0 = time.perf_counter()
        for _ in range(args.groups):
            start.record()
            for _ in range(args.per_group):
                graph.replay()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop) / args.per_group)
        wall = time.perf_counter() - t0
    step_ms = statistics.median(times)
    weights, kv = step.bytes_per_step()
    roof_ms = (weights + kv) / (bw * 1e9) * 1e3
    report = {
        "benchmark": "torch_decode_step",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
        "config": {"model": args.model, "batch": args.batch, "context": args.context,
                   "layers": step.n_layers, "page_size_for_bytes": 16},
        "ceilings": {"read_gbps_torch_sum": bw},
        "result": {
            "step_ms_median": step_ms,
            "step_ms_min": min(times),
            "tok_s": args.batch / (step_ms * 1e-3),
            "tok_s_wall": args.batch * args.groups * args.per_group / wall,
            "bytes_per_step": weights + kv,
            "weight_bytes": weights,
            "kv_bytes": kv,
            "roofline_ms": roof_ms,
            "pct_of_roofline": 100.0 * roof_ms / step_ms,
        },
    }
    print(f"torch decode step {args.model} B={args.batch} L={args.context} layers={step.n_layers}")
    print(f"  step {step_ms:.3f} ms  ->  {report['result']['tok_s']:.0f} tok/s")
    print(f"  bytes {(weights + kv) / 1e9:.2f} GB, read bw {bw:.0f} GB/s, roofline {roof_ms:.3f} ms "
          f"({report['result']['pct_of_roofline']:.1f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
