"""mofo.torch.MoFO with sharded parameters: two processes on torch.distributed's gloo backend, each
holding one slice of every tensor (cut unevenly, as ZeRO's flat partitions cut them), against one
optimizer holding the whole tensors in the same process (the reference): after every step each
slice's parameters and moments equal the reference's entries bit for bit, and the entries the
slices moved add up to the reference's count exactly.

Exits 77 (ctest: skipped) only where torch is not installed."""

import os
import sys
import tempfile
import unittest

try:
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
except ImportError:
    print("skipped: torch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

import mofo.torch

SHAPES = [(40, 33), (7, 300), (33,), (5, 5)]  # matrices filtered, the vector dense
CUT = 0.37                                    # rank 0 holds the first 37% of each flattened tensor
STEPS = 5


def tensors(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(s, generator=g) * 2 - 1 for s in SHAPES]


def groups(params, shapes):
    mats = [p for p, s in zip(params, shapes) if len(s) >= 2]
    vecs = [p for p, s in zip(params, shapes) if len(s) < 2]
    return [{"params": mats, "filtered": True, "weight_decay": 0.01}, {"params": vecs, "filtered": False}]


def worker(rank, world, init_file, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init_file, rank=rank, world_size=world)
    full = [torch.nn.Parameter(t) for t in tensors(0)]
    mine, places = [], []
    for p in full:
        a, b = (int(CUT * p.numel()), p.numel()) if rank else (0, int(CUT * p.numel()))
        mine.append(torch.nn.Parameter(p.detach().flatten()[a:b].clone()))
        places.append((a, b))
    kw = dict(lr=0.05, alpha=0.1)
    ref = mofo.torch.MoFO(groups(full, SHAPES), **kw)
    sharded = mofo.torch.MoFO(groups(mine, SHAPES), shards={q: (a, p.numel()) for q, p, (a, _) in
                                                           zip(mine, full, places)}, **kw)
    failures = []
    for step in range(STEPS):
        for p, q, (a, b), g in zip(full, mine, places, tensors(100 + step)):
            p.grad = g * (1 + step)
            q.grad = p.grad.flatten()[a:b].clone()
        ref.step()
        sharded.step()
        moved = torch.tensor([sharded.stats()["updated"]], dtype=torch.int64)
        dist.all_reduce(moved)
        if int(moved) != ref.stats()["updated"]:
            failures.append("step %d: slices moved %d, the whole tensors %d" % (step + 1, int(moved),
                                                                                 ref.stats()["updated"]))
        for i, (p, q, (a, b)) in enumerate(zip(full, mine, places)):
            for what, x, y in (("param", q.detach(), p.detach().flatten()[a:b]),
                               ("exp_avg", sharded.state[q]["exp_avg"], ref.state[p]["exp_avg"].flatten()[a:b]),
                               ("exp_avg_sq", sharded.state[q]["exp_avg_sq"],
                                ref.state[p]["exp_avg_sq"].flatten()[a:b])):
                if not torch.equal(x, y):
                    failures.append("step %d rank %d tensor %d: %s differs by %g" %
                                    (step + 1, rank, i, what, (x - y).abs().max().item()))
    with open(out_file + str(rank), "w") as f:
        f.write("\n".join(failures) if failures else "ok %d %d" % (ref.stats()["updated"], ref.stats()["entries"]))
    dist.destroy_process_group()


class Sharded(unittest.TestCase):
    def test_two_processes_equal_one_bit_for_bit(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "result")
            mp.spawn(worker, args=(2, os.path.join(d, "init"), out), nprocs=2, join=True)
            for r in range(2):
                with open(out + str(r)) as f:
                    text = f.read()
                self.assertTrue(text.startswith("ok"), "rank %d: %s" % (r, text))

    def test_bad_shards_are_named(self):
        p = torch.nn.Parameter(torch.zeros(10))
        with self.assertRaisesRegex(ValueError, "does not fit"):
            mofo.torch.MoFO([p], shards={p: (5, 12)})
        with self.assertRaisesRegex(ValueError, "exact_k"):
            mofo.torch.MoFO([p], shards={p: (0, 20)}, exact_k=True)


if __name__ == "__main__":
    unittest.main()
