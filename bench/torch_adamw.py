#!/usr/bin/env python3
"""torch.optim.AdamW(fused=True) on the shapes of `mofo bench optim --device cuda` (GPT-2 124M,
TinyLlama 1.1B, GPT-2 1.5B), timed with CUDA events, medians; optionally the authors' MoFO step
written with torch.topk per tensor (--mofo), for the side-by-side table of the device check.

    python3 bench/torch_adamw.py [--params 124M 1.1B 1.5B] [--dtype fp32|bf16] [--mofo] [--json]
"""
import argparse
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mofo.bench import gpt2_shapes, tinyllama_shapes, topk_mofo_step  # noqa: E402 (the shared definitions)


SHAPES = {"124M": gpt2_shapes, "1.1B": tinyllama_shapes, "1.5B": lambda: gpt2_shapes(1600, L=48)}


def median_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", nargs="+", default=["124M", "1.1B", "1.5B"])
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--mofo", action="store_true", help="also the authors' topk MoFO step")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dtype = torch.float32 if args.dtype == "fp32" else torch.bfloat16
    rows = []
    for name in args.params:
        gen = torch.Generator(device="cuda").manual_seed(0)
        params = []
        for s in SHAPES[name]():
            p = torch.nn.Parameter(torch.randn(s, device="cuda", dtype=dtype, generator=gen) * 0.02)
            p.grad = torch.randn(s, device="cuda", dtype=dtype, generator=gen) * 1e-3
            params.append(p)
        n = sum(p.numel() for p in params)
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=True)
        row = {"params": n, "shapes": name, "dtype": args.dtype, "gpu": torch.cuda.get_device_name(),
               "torch": torch.__version__, "cuda": torch.version.cuda,
               "torch_fused_adamw_ms": median_ms(opt.step, args.warmup, args.reps)}
        del opt
        if args.mofo:
            states = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
            t = [0]

            def authors_step():
                t[0] += 1
                topk_mofo_step(params, states, 1e-4, t[0])

            row["authors_mofo_ms"] = median_ms(authors_step, 2, max(3, args.reps // 4))
            del states
        del params
        torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"{name:>5} {n / 1e6:8.1f}M {args.dtype}: torch fused AdamW {row['torch_fused_adamw_ms']:.3f} ms"
              + (f", authors' MoFO (topk) {row['authors_mofo_ms']:.3f} ms" if args.mofo else ""), flush=True)


if __name__ == "__main__":
    main()
