#!/usr/bin/env python3
"""Training steps in PyTorch beside `mofo bench train --device cuda`, on the same card: a Hugging Face
model made from its config (GPT-2 124M or the TinyLlama-1.1B shape, random weights, as mofo's bench
makes them), bf16 autocast, torch's fused AdamW, eager and torch.compile, and the authors' MoFO step
(torch.topk of |m| per tensor, python/mofo/bench.py) in place of AdamW. Random token batches; the
median of the timed steps after the warm-up, each step timed with CUDA events; tokens/s, ms per step,
optimizer ms, peak GPU memory (torch.cuda.max_memory_allocated).

    python3 bench/torch_train.py [--model gpt2|llama] [--batch B] [--seq T] [--steps S] [--warmup W]
                                 [--optimizer adamw|topk-mofo] [--compile] [--json]

Needs torch with CUDA and transformers (the device machines have both). Not run where this was
written (no GPU, no transformers): the device check runs it."""
import argparse
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from mofo.bench import TopkMoFO  # noqa: E402 (the authors' step, shared with mofo.bench)


def make_model(name):
    import transformers
    if name == "gpt2":
        cfg = transformers.GPT2Config(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257)
        return transformers.GPT2LMHeadModel(cfg)
    cfg = transformers.LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                                   num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
                                   max_position_embeddings=2048, tie_word_embeddings=False)
    return transformers.LlamaForCausalLM(cfg)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gpt2", choices=["gpt2", "llama"])
    ap.add_argument("--batch", type=int, default=0, help="default 16 for gpt2, 4 for llama")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--optimizer", default="adamw", choices=["adamw", "topk-mofo"])
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if not torch.cuda.is_available():
        print("torch_train.py: torch sees no CUDA device", file=sys.stderr)
        return 2
    B = a.batch or (16 if a.model == "gpt2" else 4)
    torch.manual_seed(0)
    model = make_model(a.model).cuda()
    params = [p for p in model.parameters() if p.requires_grad]
    if a.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=True)
    else:
        opt = TopkMoFO(params, lr=1e-4)
    run = torch.compile(model) if a.compile else model
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (B, a.seq), device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = run(input_ids=ids, labels=ids).loss
        loss.backward()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record()
        opt.step()
        for p in params:
            p.grad = None
        return loss, ev

    torch.cuda.reset_peak_memory_stats()
    total, optim = [], []
    for s in range(a.warmup + a.steps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        loss, before_opt = step()
        end.record()
        end.synchronize()
        if s >= a.warmup:
            total.append(start.elapsed_time(end))
            optim.append(before_opt.elapsed_time(end))
    ms = statistics.median(total)
    row = {"model": a.model, "optimizer": a.optimizer, "compile": a.compile, "batch": B, "seq": a.seq,
           "ms_per_step": round(ms, 2), "optimizer_ms": round(statistics.median(optim), 2),
           "tokens_per_s": round(B * a.seq / (ms / 1e3), 1),
           "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20), "loss": round(float(loss), 4),
           "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    print(json.dumps(row) if a.json else
          "%(model)s %(optimizer)s compile=%(compile)s B=%(batch)d T=%(seq)d: %(ms_per_step).1f ms/step, "
          "optimizer %(optimizer_ms).1f ms, %(tokens_per_s).0f tok/s, peak %(peak_gpu_mb)d MB" % row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
