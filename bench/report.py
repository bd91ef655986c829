#!/usr/bin/env python3
"""Renders benchmark JSON files (bench/bench.cpp, bench/peers_torch.py) as markdown tables and a PNG
plot of attention time against kept fraction per backend.
    report.py OUT.png FILE.json... > tables.md
"""
import json
import sys


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            for r in json.load(f):
                r["file"] = p
                rows.append(r)
    return rows


def main():
    png, paths = sys.argv[1], sys.argv[2:]
    rows = load(paths)
    # GPU TFLOP/s against the fp16 matmul the PyTorch peers measure in the same device call: used only
    # where the files given hold exactly one (files from several calls or devices: pass them apart)
    matmuls = [r for r in rows if r["bench"] == "matmul" and r["backend"] == "torch"]
    matmul = matmuls[0]["value"] if len(matmuls) == 1 else 0
    if len(matmuls) > 1:
        print(f"({len(matmuls)} matmul ceilings in these files: no % of matmul column; report one call's files at a time)", file=sys.stderr)
    print("| backend | bench | shape | median ms | rate | kept | note |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        rate = f"{r['value']:.2f} {r['metric']}" if r["metric"] != "ms" else ""
        roof = r.get("roof_ratio") or 0
        kind = r.get("roof_kind", "copy" if r["metric"] == "GB/s" else "datasheet")
        if roof and kind == "copy":
            rate += f" ({roof * 100:.0f}% of copy)"
        if roof and kind in ("datasheet", "tflops-roof"):
            rate += f" ({roof * 100:.0f}% of {'datasheet f16 peak' if kind == 'datasheet' else 'the given f16 ceiling'})"
        if r["metric"] == "TFLOP/s" and matmul and r["backend"] in ("hip", "vulkan", "torch") and r["bench"] != "matmul":
            rate += f" ({r['value'] / matmul * 100:.0f}% of matmul)"
        print(f"| {r['backend']} | {r['bench']} | {r['shape']} | {r['median_ms']:.4g} | {rate} | {r.get('kept_fraction', 1):.3f} | {r.get('note', '')} |")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(no matplotlib: plot not drawn)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = {}
    for r in rows:
        if r["bench"].startswith(("prefill", "flex_prefill")):
            groups.setdefault((r["file"], r["backend"], r["shape"]), []).append((r["kept_fraction"], r["median_ms"]))
    for (_, backend, shape), pts in sorted(groups.items()):
        pts.sort()
        if len(pts) < 2 or pts[-1][0] != 1:  # needs the dense point (kept fraction 1) of the same file
            continue
        dense = pts[-1][1]
        ax.plot([f for f, _ in pts], [ms / dense for _, ms in pts], "o-", label=f"{backend} {shape} (dense {dense:.3g} ms)")
    ax.plot([0, 1], [0.05, 1.05], "k--", lw=0.8, label="target: kept + 0.05")
    ax.set_xlabel("kept fraction of causal blocks")
    ax.set_ylabel("time / own dense time")
    ax.set_title("Block-sparse prefill: time against kept fraction")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
