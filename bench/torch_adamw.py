#!/usr/bin/env python3
"""torch.optim.AdamW(fused=True) on the shapes of `mofo bench optim --device cuda` (GPT-2 124M,
TinyLlama 1.1B, GPT-2 1.5B), timed with CUDA events, medians; optionally the authors' MoFO step
written with torch.topk per tensor (--mofo), for the side-by-side table of the device check.

    python3 bench/torch_adamw.py [--params 124M 1.1B 1.5B] [--dtype fp32|bf16] [--mofo] [--json]
"""
import argparse
import json
import statistics

import torch


def gpt2(C, V=50257, P=1024, L=12):
    shapes = [(V, C), (P, C)]
    for _ in range(L):
        shapes += [(C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,), (C,), (C,), (C, 4 * C), (4 * C,), (4 * C, C), (C,)]
    return shapes + [(C,), (C,)]


def tinyllama():
    C, KV, F, V = 2048, 256, 5632, 32000
    shapes = [(V, C)]
    for _ in range(22):
        shapes += [(C, C), (KV, C), (KV, C), (C, C), (F, C), (F, C), (C, F), (C,), (C,)]
    return shapes + [(C,), (V, C)]


SHAPES = {"124M": lambda: gpt2(768), "1.1B": tinyllama, "1.5B": lambda: gpt2(1600, L=48)}


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


def mofo_step(params, states, lr, alpha=0.15, b1=0.9, b2=0.999, eps=1e-8, wd=0.01, step=[0]):
    """The authors' MoFO: dense Adam moments, top-k of |m| per 2+-dim tensor (torch.topk)."""
    step[0] += 1
    t = step[0]
    with torch.no_grad():
        for p, (m, v) in zip(params, states):
            g = p.grad
            p.mul_(1 - lr * wd)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / (1 - b2 ** t) ** 0.5).add_(eps)
            upd = m / denom * (lr / (1 - b1 ** t))
            if p.dim() >= 2:
                flat = m.abs().flatten()
                k = max(1, int(flat.numel() * alpha))
                thr = torch.topk(flat, k, sorted=False).values.min()
                upd = upd * (m.abs() >= thr)
            p.sub_(upd)


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
            row["authors_mofo_ms"] = median_ms(lambda: mofo_step(params, states, 1e-4), 2, max(3, args.reps // 4))
            del states
        del params
        torch.cuda.empty_cache()
        rows.append(row)
        print(json.dumps(row) if args.json else
              f"{name:>5} {n / 1e6:8.1f}M {args.dtype}: torch fused AdamW {row['torch_fused_adamw_ms']:.3f} ms"
              + (f", authors' MoFO (topk) {row['authors_mofo_ms']:.3f} ms" if args.mofo else ""), flush=True)


if __name__ == "__main__":
    main()
