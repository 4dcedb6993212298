"""python3 -m mofo.bench [--device cpu|cuda] [--steps N] [--threads N] [--json]: optimizer steps on the parameter
shapes of GPT-2 small (124.4M entries, 148 tensors), side by side in one run:

  torch AdamW      torch.optim.AdamW (foreach where this torch has it; fused on CUDA)
  topk MoFO        MoFO as the authors' AdamW_MoFO writes it: torch.topk of |m| on every 2-dim tensor
  mofo.torch.MoFO  libmofo's step (alpha 0.15, 2+-dim tensors filtered)

Each row: the median ms per step over the timed steps after one warm-up step, on fixed random
gradients; on CUDA (fp32 parameters on the current device) each step is timed to the end of its
work on the device (torch.cuda.synchronize)."""

import argparse
import json
import statistics
import sys
import time

import torch


def gpt2_shapes(C=768, V=50257, P=1024, L=12):
    """The parameter shapes of a GPT-2 (small by default; C=1600, L=48 for 1.5B)."""
    shapes = [(V, C), (P, C)]
    for _ in range(L):
        shapes += [(C,), (C,), (C, 3 * C), (3 * C,), (C, C), (C,), (C,), (C,), (C, 4 * C), (4 * C,), (4 * C, C), (C,)]
    return shapes + [(C,), (C,)]


def tinyllama_shapes():
    C, KV, F, V = 2048, 256, 5632, 32000
    shapes = [(V, C)]
    for _ in range(22):
        shapes += [(C, C), (KV, C), (KV, C), (C, C), (F, C), (F, C), (C, F), (C,), (C,)]
    return shapes + [(C,), (V, C)]


def topk_mofo_step(params, states, lr, t, alpha=0.15, b1=0.9, b2=0.999, eps=1e-8, wd=0.01):
    """Step t of MoFO as the authors' AdamW_MoFO takes it: dense Adam moments, then torch.topk of |m|
    on every 2+-dim tensor (entries tied at the threshold move too); states: (m, v) per parameter."""
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


class TopkMoFO:
    """topk_mofo_step as an object with step(), for time_steps."""

    def __init__(self, params, lr):
        self.params, self.lr, self.t = list(params), lr, 0
        self.states = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.params]

    def step(self):
        self.t += 1
        topk_mofo_step(self.params, self.states, self.lr, self.t)


def time_steps(make, params, steps, sync):
    opt = make(params)
    times = []
    for s in range(steps + 1):
        sync()
        t0 = time.perf_counter()
        opt.step()
        sync()
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
    if a.device == "cuda" and not torch.cuda.is_available():
        print("mofo.bench: --device cuda: torch sees no CUDA device (torch.cuda.is_available() is False)",
              file=sys.stderr)
        return 2
    if a.steps < 1 or a.topk_steps < 1:
        print("mofo.bench: --steps and --topk-steps must be >= 1", file=sys.stderr)
        return 2
    import mofo.torch  # here, so that the shapes and the topk step import without libmofo (bench/torch_adamw.py)

    gen = torch.Generator().manual_seed(0)
    shapes = gpt2_shapes()
    params = [torch.nn.Parameter((torch.randn(s, generator=gen) * 0.02).to(a.device)) for s in shapes]
    for p in params:
        p.grad = (torch.randn(p.shape, generator=gen) * 1e-3).to(a.device)
    n = sum(p.numel() for p in params)
    adamw_args = torch.optim.AdamW.__init__.__code__.co_varnames
    if a.device == "cuda" and "fused" in adamw_args:
        fast = {"fused": True}
    else:
        fast = {"foreach": True} if "foreach" in adamw_args else {}
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    rows = [
        ("torch AdamW", lambda ps: torch.optim.AdamW(ps, lr=1e-4, weight_decay=0.01, **fast), a.steps),
        ("topk MoFO", lambda ps: TopkMoFO(ps, lr=1e-4), a.topk_steps),
        ("mofo.torch.MoFO", lambda ps: mofo.torch.MoFO(ps, lr=1e-4, weight_decay=0.01), a.steps),
    ]
    if not a.json:
        where = torch.cuda.get_device_name() if a.device == "cuda" else "%d torch threads" % torch.get_num_threads()
        print("mofo.bench: GPT-2 small shapes (%.1fM entries, %d tensors), %s, torch %s, AdamW %s, %s" %
              (n / 1e6, len(params), where, torch.__version__, ",".join(fast) or "for-loop", mofo.lib.LIBRARY_PATH))
        print("%-18s %10s %10s" % ("optimizer", "ms/step", "vs AdamW"))
    base = None
    for name, make, steps in rows:
        ms = time_steps(make, params, steps, sync)
        base = base or ms
        if a.json:
            print(json.dumps({"optimizer": name, "ms_per_step": round(ms, 2), "vs_adamw": round(ms / base, 3),
                              "device": a.device, "threads": torch.get_num_threads(), "entries": n}))
        else:
            print("%-18s %10.1f %9.2fx" % (name, ms, ms / base))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
