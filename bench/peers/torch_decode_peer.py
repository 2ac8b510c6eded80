#!/usr/bin/env python3
"""PyTorch peers of vortex_kernel_bench, timed on the same GPU in the same run (BENCHMARKS.md).

- sdpa: decode attention (one query token) over a *contiguous* bf16 cache [B, H_kv, L, D] with
  scaled_dot_product_attention (GQA), graph-captured; the shapes of vortex's dense grid.
- naive_block_topk: one layer of the naive sparse pipeline at B=32, L=16K, 32 pages of 16 tokens:
  centroid scores by bmm -> torch.topk -> gather of the selected pages -> SDPA, graph-captured.

Timing: CUDA graph replay between CUDA events, warm-up, median over groups; inputs rotate over
copies whose total exceeds the L2 several times. Writes JSON (--json) and prints a table.
"""
import argparse
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F

H_Q, H_KV, D, P = 16, 8, 128, 16


def capture(fn):
    """Warms `fn` up on a side stream and captures it into a CUDA graph."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g


def time_graphs(graphs, groups, per_group):
    """Median per-replay time (us) of round-robin replays of `graphs`."""
    for g in graphs:
        g.replay()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    i = 0
    for _ in range(groups):
        start.record()
        for _ in range(per_group):
            graphs[i % len(graphs)].replay()
            i += 1
        stop.record()
        stop.synchronize()
        times.append(1000.0 * start.elapsed_time(stop) / per_group)
    return statistics.median(times), min(times)


def sdpa(q, k, v):
    """Decode GQA without copying K/V: the G query heads of a KV head become G query rows of that
    head (no mask), so every backend sees plain MHA: q [B, H_q, 1, D] -> [B, H_kv, G, D]."""
    b, hq, _, d = q.shape
    hkv = k.shape[1]
    o = F.scaled_dot_product_attention(q.view(b, hkv, hq // hkv, d), k, v)
    return o.view(b, hq, 1, d)


def read_ceiling():
    """A PyTorch-side read number for orientation (sum over 4 GiB of bf16)."""
    x = torch.ones(2 << 30, dtype=torch.bfloat16, device="cuda")
    g = capture(lambda: x.sum(dtype=torch.float32))
    med, _ = time_graphs([g], 7, 1)
    del x, g
    torch.cuda.empty_cache()
    return (4 << 30) / (med * 1e3)


def sdpa_case(batch, length, groups, l2):
    kv_bytes = 2 * batch * H_KV * length * D * 2
    copies = max(1, min(64, math.ceil(4 * l2 / kv_bytes)))
    graphs, keep = [], []
    for _ in range(copies):
        q = torch.randn(batch, H_Q, 1, D, device="cuda", dtype=torch.bfloat16)
        k = torch.rand(batch, H_KV, length, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
        v = torch.rand(batch, H_KV, length, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
        out = torch.empty(batch, H_Q, 1, D, device="cuda", dtype=torch.bfloat16)

        def fn(q=q, k=k, v=v, out=out):
            out.copy_(sdpa(q, k, v))

        graphs.append(capture(fn))
        keep.append((q, k, v, out))
    est_us = kv_bytes / 3e6
    per_group = max(copies, min(400, math.ceil(2000 / max(est_us, 1.0))))
    med, mn = time_graphs(graphs, groups, per_group)
    del graphs, keep
    torch.cuda.empty_cache()
    return {"B": batch, "L": length, "median_us": med, "min_us": min(med, mn), "copies": copies,
            "bytes": kv_bytes, "gbps": kv_bytes / (med * 1e3)}


def naive_block_topk(groups, l2, selected=32):
    batch, length = 32, 16384
    n = length // P
    kv_bytes = 2 * batch * H_KV * length * D * 2
    copies = max(1, min(4, math.ceil(4 * l2 / (batch * H_KV * n * D * 2))))
    graphs, keep = [], []
    for _ in range(copies):
        q = torch.randn(batch, H_Q, 1, D, device="cuda", dtype=torch.bfloat16)
        k = torch.rand(batch, H_KV, length, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
        v = torch.rand(batch, H_KV, length, D, device="cuda", dtype=torch.bfloat16) * 2 - 1
        cent = k.view(batch, H_KV, n, P, D).mean(3)  # [B, H_kv, n, D]
        out = torch.empty(batch, H_Q, 1, D, device="cuda", dtype=torch.bfloat16)

        def fn(q=q, k=k, v=v, cent=cent, out=out):
            qbar = q.view(batch, H_KV, H_Q // H_KV, D).mean(2)  # [B, H_kv, D]
            scores = torch.bmm(cent.view(batch * H_KV, n, D),
                               qbar.reshape(batch * H_KV, D, 1)).view(batch, H_KV, n)
            scores[..., 0] = float("inf")   # bos page
            scores[..., -1] = float("inf")  # last page
            idx = torch.topk(scores, selected, dim=-1).indices  # [B, H_kv, 32]
            gi = idx[..., None].expand(-1, -1, -1, P * D)
            kp = torch.gather(k.view(batch, H_KV, n, P * D), 2, gi).view(batch, H_KV, selected * P, D)
            vp = torch.gather(v.view(batch, H_KV, n, P * D), 2, gi).view(batch, H_KV, selected * P, D)
            out.copy_(sdpa(q, kp, vp))

        graphs.append(capture(fn))
        keep.append((q, k, v, cent, out))
    med, mn = time_graphs(graphs, groups, 20)
    del graphs, keep
    torch.cuda.empty_cache()
    return {"B": batch, "L": length, "selected_pages": selected, "median_us": med,
            "min_us": min(med, mn), "copies": copies, "dense_kv_bytes": kv_bytes}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the JSON report here")
    ap.add_argument("--quick", action="store_true", help="smaller grid, fewer groups")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch_decode_peer: no CUDA device", file=sys.stderr)
        return 1
    props = torch.cuda.get_device_properties(0)
    l2 = getattr(props, "L2_cache_size", 50 << 20)
    groups = 5 if args.quick else 15
    batches = [1, 32] if args.quick else [1, 8, 32, 64]
    lens = [1024, 16384] if args.quick else [1024, 4096, 16384, 32768]
    report = {"bench": "torch_decode_peer", "device": torch.cuda.get_device_name(0),
              "torch": torch.__version__, "sdpa_gqa": "query heads folded into query rows",
              "command_line": " ".join(sys.argv),
              "shape": {"H_q": H_Q, "H_kv": H_KV, "D": D, "P": P, "dtype": "bf16"}}
    report["torch_read_gbps"] = read_ceiling()
    report["sdpa"] = []
    for b in batches:
        for length in lens:
            r = sdpa_case(b, length, groups, l2)
            report["sdpa"].append(r)
            print(f"  sdpa B={b} L={length}: {r['median_us']:.1f} us, {r['gbps']:.0f} GB/s",
                  file=sys.stderr)
    report["naive_block_topk"] = naive_block_topk(groups, l2)
    print(f"  naive block top-k layer: {report['naive_block_topk']['median_us']:.1f} us",
          file=sys.stderr)
    text = json.dumps(report, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
