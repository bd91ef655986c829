# SDPA decode, queued behind a spin, K/V evicted by a 512 MiB read before each repetition (or warm).
import sys, torch, torch.nn.functional as F
dev = "cuda"
junk = torch.ones(1 << 27, dtype=torch.int32, device=dev)
lens = [int(x) for x in sys.argv[1].split(",")] if len(sys.argv) > 1 else [16384, 32768]
for N in lens:
    for H, Hk in ((8, 8), (32, 8)):
        D = 128
        q = torch.randn(1, H, 1, D, device=dev, dtype=torch.float16)
        k = torch.randn(1, Hk, N, D, device=dev, dtype=torch.float16)
        v = torch.randn(1, Hk, N, D, device=dev, dtype=torch.float16)
        gqa = H != Hk
        def call():
            return F.scaled_dot_product_attention(q, k, v, enable_gqa=gqa)
        for mode in ("cold", "warm"):
            ts = []
            for r in range(60):
                if mode == "cold":
                    s = junk.sum()
                torch.cuda._sleep(400000)
                a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
                a.record(); o = call(); b.record()
                torch.cuda.synchronize()
                if r >= 10: ts.append(a.elapsed_time(b))
            ts.sort()
            print(f"sdpa decode queued {mode} H={H}/{Hk} Nk={N} median ms {ts[len(ts)//2]:.4f}", flush=True)
