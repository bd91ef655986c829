"""PyTorch peers on the same shapes and keep rules as bench/bench.cpp (run on the GPU machine).

SDPA (dense) and FlexAttention (create_block_mask from the same keep rule, compiled), plus the
device ceilings: a device copy and an fp16 matrix product. Prints one JSON list.
    python3 bench/peers_torch.py [--quick] [--decode] [--queued] > peers.json
--decode: the ceilings and the decode cases only. --queued: each decode case is also timed queued
(a second row, note "queued"): each timed call waits behind a ~200 us GPU spin (torch.cuda._sleep),
so its events measure GPU time alone, not the host's launch latency (as a CUDA graph or a busy
stream would see it); bench/bench.cpp --queued does the same. Both rows come from one process, so
FlexAttention compiles each shape once. Before every timed call a 256 MiB buffer is read (summed, untimed),
so each call reads its K/V from memory, as bench/bench.cpp does; --warm-cache skips that.
"""
import json
import sys

import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

quick = "--quick" in sys.argv
only_decode = "--decode" in sys.argv
queued = "--queued" in sys.argv
warm_cache = "--warm-cache" in sys.argv
dev = "cuda"
# Every prefill and decode shape is a new compilation of flex_attention: past dynamo's default limit
# of 8 it silently ran the unfused eager version (H200 run 26: GQA 32K decode 3.4 ms instead of ~0.1).
for name in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, name):
        setattr(torch._dynamo.config, name, 256)
flex = torch.compile(flex_attention)
rows = []


junk = torch.empty(1 << 26, dtype=torch.float32, device=dev)


def median(ts):
    ts = sorted(ts)
    m = len(ts) // 2
    return ts[m] if len(ts) % 2 else (ts[m - 1] + ts[m]) / 2


def timed(fn, reps=21, spin=False):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if not warm_cache:
            junk.sum()
        if spin:
            torch.cuda._sleep(400_000)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return median(ts)


def add(bench, shape, ms, metric, value, kept=1.0, note=""):
    rows.append(dict(backend="torch", bench=bench, shape=shape, median_ms=ms, metric=metric, value=value, kept_fraction=kept, note=note))
    print(f"  torch {bench:22s} {shape:44s} {ms:10.4f} ms {value:9.2f} {metric} kept {kept:.3f}", file=sys.stderr)


n = 1 << 28
x, y = torch.empty(n, dtype=torch.float32, device=dev), torch.empty(n, dtype=torch.float32, device=dev)
ms = timed(lambda: y.copy_(x))
add("copy", "device copy 1 GiB", ms, "GB/s", 2 * 4 * n / ms / 1e6)
a = torch.randn(8192, 8192, dtype=torch.float16, device=dev)
ms = timed(lambda: a @ a, reps=11)
add("matmul", "fp16 8192^3", ms, "TFLOP/s", 2 * 8192**3 / ms / 1e9)


def fraction_keep(f, B):
    m = round(f * 8)

    def mask_mod(b, h, q, k):
        kb, kq = k // B, q // B
        return (k <= q) & ((((kb * 5 + kq * 3) % 8) < m) | (kb == kq))

    return mask_mod


H, D, B = 16, 128, 128
prefills = [] if only_decode else [(2048 if quick else 4096, f) for f in (1.0, 0.5, 0.25, 0.125)] + ([] if quick else [(16384, f) for f in (1.0, 0.5, 0.25, 0.125)])
for N, f in prefills:
    q = torch.randn(1, H, N, D, dtype=torch.float16, device=dev)
    k, v = torch.randn_like(q), torch.randn_like(q)
    shape = f"H={H}/{H} D={D} Nq={N} Nk={N} B={B}"
    if f >= 1:
        ms = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True))
        add("sdpa_prefill_dense", shape, ms, "TFLOP/s", 4 * H * D * (N * (N + 1) / 2) / ms / 1e9)
        bm = create_block_mask(lambda b, h, qi, ki: ki <= qi, None, None, N, N, device=dev, BLOCK_SIZE=B)
    else:
        bm = create_block_mask(fraction_keep(f, B), None, None, N, N, device=dev, BLOCK_SIZE=B)
    dense = bm.to_dense()
    kept = float(dense.sum()) / float(torch.ones(N // B, N // B, device=dev).tril().sum())
    # work: the causal (query, key) pairs inside kept blocks (a diagonal block holds B (B + 1) / 2), as bench.cpp counts them
    diag = float(dense.reshape(dense.shape[-2], dense.shape[-1]).diagonal().sum())
    pairs = (float(dense.sum()) - diag) * B * B + diag * B * (B + 1) / 2
    ms = timed(lambda: flex(q, k, v, block_mask=bm))
    add("flex_prefill" if f < 1 else "flex_prefill_dense", shape, ms, "TFLOP/s", 4 * H * D * pairs / ms / 1e9, kept)

for Nk in ((16384,) if quick else (16384, 32768, 131072)):
    for Hq, Hk in ((8, 8), (32, 8)):
        q = torch.randn(1, Hq, 1, D, dtype=torch.float16, device=dev)
        k = torch.randn(1, Hk, Nk, D, dtype=torch.float16, device=dev)
        v = torch.randn_like(k)
        shape = f"H={Hq}/{Hk} D={D} Nq=1 Nk={Nk} B={B}"
        kv_bytes = 2 * Hk * Nk * D * 2
        sdpa = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=Hq != Hk)
        for spin in (False, True) if queued else (False,):
            ms = timed(sdpa, spin=spin)
            add("sdpa_decode_dense", shape, ms, "GB/s", kv_bytes / ms / 1e6, note="queued" if spin else "")
        KB = Nk // B
        W = max(1, round(0.25 * KB) - 1)
        bm = create_block_mask(lambda b, h, qi, ki: ((KB - 1 - ki // B) < W) | (ki // B < 1), None, None, 1, Nk, device=dev, BLOCK_SIZE=B)
        kept = (W + 1) / KB
        fx = lambda: flex(q, k, v, block_mask=bm, enable_gqa=Hq != Hk)
        for spin in (False, True) if queued else (False,):
            ms = timed(fx, spin=spin)
            add("flex_decode_sparse", shape, ms, "GB/s", kv_bytes * kept / ms / 1e6, kept, "queued" if spin else "")

print(json.dumps(rows, indent=1))
