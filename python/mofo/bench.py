"""python3 -m mofo.bench [--device cpu] [--steps N] [--threads N] [--json]: optimizer steps on the parameter shapes
of GPT-2 small (124.4M entries, 148 tensors), side by side in one run:

  torch AdamW      torch.optim.AdamW (foreach where this torch has it)
  topk MoFO        MoFO as the authors' AdamW_MoFO writes it: torch.topk of |m| on every 2-dim tensor
  mofo.torch.MoFO  libmofo's step (alpha 0.15, 2+-dim tensors filtered)

Each row: the median ms per step over the timed steps after one warm-up step, on fixed random
gradients. Only CPU tensors: this binding has no CUDA path yet."""

import argparse
import json
import math
import statistics
import sys
import time

import torch

import mofo.torch


def gpt2_small_shapes():
    C, V, T, L = 768, 50257, 1024, 12
    shapes = [(V, C), (T, C)]
    for _ in range(L):
        shapes += [(C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,), (C,), (C,), (C, 4 * C), (4 * C,), (4 * C, C), (C,)]
    return shapes + [(C,), (C,)]


class TopkMoFO(torch.optim.Optimizer):
    """MoFO the way the authors' class steps it: AdamW's moments, then torch.topk of |m| per tensor."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, alpha=0.15):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, alpha=alpha))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            lr, (b1, b2), eps, wd, alpha = group["lr"], group["betas"], group["eps"], group["weight_decay"], group["alpha"]
            for p in group["params"]:
                st = self.state[p]
                if not st:
                    st["step"], st["exp_avg"], st["exp_avg_sq"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["step"] += 1
                t, m, v, g = st["step"], st["exp_avg"], st["exp_avg_sq"], p.grad
                p.mul_(1 - lr * wd)
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (v.sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
                update = m
                if p.dim() >= 2:
                    k = max(1, int(p.numel() * alpha))
                    mask = torch.zeros(p.numel(), dtype=torch.bool)
                    mask[torch.topk(m.abs().flatten(), k).indices] = True
                    update = m * mask.view_as(p)
                p.addcdiv_(update, denom, value=-lr / (1 - b1 ** t))


def time_steps(make, params, steps):
    opt = make(params)
    times = []
    for s in range(steps + 1):
        t0 = time.perf_counter()
        opt.step()
        if s:  # the first step allocates the state
            times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m mofo.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--steps", type=int, default=3, help="timed steps per optimizer (default 3)")
    ap.add_argument("--topk-steps", type=int, default=2, help="timed steps of the topk version (default 2; slow)")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads(N) first (libmofo takes the same)")
    ap.add_argument("--json", action="store_true", help="one JSON object per row")
    a = ap.parse_args(argv)
    if a.threads < 0:
        print("mofo.bench: --threads must be >= 0", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.device == "cuda":
        print("mofo.bench: --device cuda: this binding steps CPU tensors only (no CUDA path yet)", file=sys.stderr)
        return 2
    if a.steps < 1 or a.topk_steps < 1:
        print("mofo.bench: --steps and --topk-steps must be >= 1", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(0)
    shapes = gpt2_small_shapes()
    params = [torch.nn.Parameter(torch.randn(s, generator=gen) * 0.02) for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    n = sum(p.numel() for p in params)
    foreach = {"foreach": True} if "foreach" in torch.optim.AdamW.__init__.__code__.co_varnames else {}
    rows = [
        ("torch AdamW", lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.01, **foreach), a.steps),
        ("topk MoFO", lambda ps: TopkMoFO(ps, lr=1e-4, weight_decay=0.01), a.topk_steps),
        ("mofo.torch.MoFO", lambda ps: mofo.torch.MoFO(ps, lr=1e-4, weight_decay=0.01), a.steps),
    ]
    if not a.json:
        print("mofo.bench: GPT-2 small shapes (%.1fM entries, %d tensors), %d torch threads, torch %s, %s" %
              (n / 1e6, len(params), torch.get_num_threads(), torch.__version__, mofo.lib.LIBRARY_PATH))
        print("%-18s %10s %10s" % ("optimizer", "ms/step", "vs AdamW"))
    base = None
    for name, make, steps in rows:
        ms = time_steps(make, params, steps)
        base = base or ms
        if a.json:
            print(json.dumps({"optimizer": name, "ms_per_step": round(ms, 2), "vs_adamw": round(ms / base, 3),
                              "threads": torch.get_num_threads(), "entries": n}))
        else:
            print("%-18s %10.1f %9.2fx" % (name, ms, ms / base))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
