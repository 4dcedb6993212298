"""Fine-tuning with mofo.torch.MoFO in a plain PyTorch loop: a small causal character-level
transformer, a warm-up + linear-decay schedule, gradient clipping, MoFO's statistics, and a
checkpoint (model + optimizer state dicts) that resumes bit for bit.

    PYTHONPATH=python MOFO_LIBRARY=build/libmofo.so python3 python/examples/finetune_loop.py [--steps N]

With a Hugging Face model the loop is the same (model(**batch).loss); with transformers' Trainer,
pass optimizers=(opt, scheduler) built as below, or
optimizer_cls_and_kwargs=(mofo.torch.MoFO, {"lr": 2e-5, "alpha": 0.15})."""

import argparse
import math
import os
import tempfile

import torch

import mofo.torch

TEXT = ("the momentum filtered optimizer moves only the entries of each tensor with the largest "
        "momentum, so the model stays close to where it started and forgets less of what it knew. ") * 8


class TinyLM(torch.nn.Module):
    def __init__(self, vocab, d=64, heads=4, layers=2, ctx=64):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Embedding(ctx, d)
        layer = torch.nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True)
        self.blocks = torch.nn.TransformerEncoder(layer, layers)
        self.norm = torch.nn.LayerNorm(d)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, ids, targets):
        T = ids.shape[1]
        mask = torch.triu(torch.full((T, T), float("-inf")), diagonal=1)
        x = self.tok(ids) + self.pos(torch.arange(T))
        logits = self.head(self.norm(self.blocks(x, mask=mask)))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())


def batches(data, B, T, gen):
    while True:
        starts = torch.randint(0, len(data) - T - 1, (B,), generator=gen)
        yield (torch.stack([data[s:s + T] for s in starts]), torch.stack([data[s + 1:s + T + 1] for s in starts]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--alpha", type=float, default=0.15)
    ap.add_argument("--checkpoint", default=os.path.join(tempfile.gettempdir(), "mofo_example.pt"))
    a = ap.parse_args()
    torch.manual_seed(0)
    chars = sorted(set(TEXT))
    data = torch.tensor([chars.index(c) for c in TEXT])
    model = TinyLM(len(chars))
    opt = mofo.torch.MoFO(mofo.torch.param_groups(model, weight_decay=0.01), lr=a.lr, alpha=a.alpha)
    warmup = max(1, a.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (a.steps - s) / a.steps))
    gen = torch.Generator().manual_seed(1)
    first = None
    for step, (ids, tg) in zip(range(a.steps), batches(data, 8, 64, gen)):
        loss = model(ids, tg)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        first = loss.item() if first is None else first
        if step % 20 == 0 or step == a.steps - 1:
            s = opt.stats()
            print("step %4d  loss %.4f  lr %.2e  moved %.1f%%  ever moved %.1f%%" %
                  (step + 1, loss.item(), sched.get_last_lr()[0], 100 * s["updated_fraction"], 100 * s["coverage"]))
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
               a.checkpoint)
    print("loss %.4f -> %.4f; checkpoint in %s" % (first, loss.item(), a.checkpoint))
    if not (math.isfinite(loss.item()) and loss.item() < first):
        raise SystemExit("the loss did not fall")


if __name__ == "__main__":
    main()
