"""mofo.torch.MoFO: libmofo's optimizer as a torch.optim.Optimizer (CPU fp32; CUDA fp32 and bf16).

    opt = mofo.torch.MoFO(mofo.torch.param_groups(model, weight_decay=0.01), lr=2e-5, alpha=0.15)
    for batch in data:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)   # clipping is the caller's
        opt.step()                                                 # reads each group's current lr
        opt.zero_grad()

The update is libmofo's (include/mofo/optim.h): Adam with decoupled weight decay in which, inside
each tensor (or block of rows), only the fraction alpha of entries with the largest |m| move; the
moments are updated densely. Each param group is one libmofo optimizer, made at the group's first
step from the tensors that have a gradient then (tensors that never get one are skipped, as torch's
AdamW skips them); a group steps its tensors together, so a tensor of a group that has stepped must
keep having a gradient. lr is read at every step (torch.optim.lr_scheduler works); weight_decay,
alpha, betas, eps and filtered are fixed once the group has stepped.

Devices: CPU tensors (float32) step in libmofo's CPU code on torch.get_num_threads() threads; CUDA
tensors (float32, or bfloat16 with fp32 master weights and fp32 moments kept by libmofo) step in
libmofo's CUDA backend, on the tensors' device and torch's current stream there (the step waits for
the backward already queued on it, and returns once the update is done). A group's tensors share one
device. The CUDA path needs a libmofo built with CUDA (nvcc at build time); without it, or without a
device, the first step says so.

Sharded parameters (DeepSpeed ZeRO, FSDP): where each process holds a slice of a tensor, pass
shards={slice: (offset, full_numel)} (the slice's place in the flattened full tensor) and the
process group (default: torch.distributed's world). Each tensor's threshold is then the whole
tensor's exact k-th largest |m|, from the slices' selection histograms summed with a few small
all_reduce calls per step (libmofo's mofo_optim_set_shard), never a gather of the moments: the
sharded run equals the unsharded one bit for bit. A slice is 1-dim, so give its group
filtered=True where the full tensor is a matrix. CPU tensors only. stats() stays per process.

State: self.state[p] holds "step", "exp_avg", "exp_avg_sq" (torch's AdamW keys; the moment tensors
are views of libmofo's buffers, on the parameter's device), "ever_updated_bits" (the coverage bits,
int64 words) and, for a bfloat16 parameter, "master_param" (its fp32 master weights);
state_dict() copies them out, load_state_dict() copies them back, and a resumed run continues bit
for bit."""

import contextlib
import ctypes

import torch

from . import lib

RULES = ("adamw", "lion", "sgdm")
FILTERS = ("momentum", "gradient", "update", "random", "none")
PARTITIONS = ("tensor", "rows")


def _authors_filtered(name):
    return "bias" not in name and "norm" not in name


def _authors_decayed(name):
    return "norm" not in name and "ln_f" not in name


def param_groups(model, weight_decay=0.0, policy="ndim", **group_options):
    """Param groups for MoFO from model.named_parameters() (those with requires_grad), with names:
    policy "ndim" (libmofo's default): 2+-dim tensors filtered and decayed, 1-dim dense without
    decay; "names" (the authors' rule): filtered unless the name contains "bias" or "norm", decayed
    unless it contains "norm" or "ln_f". group_options (lr, alpha, ...) go into every group."""
    if policy not in ("ndim", "names"):
        raise ValueError("mofo: policy %r: use 'ndim' or 'names'" % (policy,))
    groups = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if policy == "ndim":
            key = (p.dim() >= 2, p.dim() >= 2)
        else:
            key = (_authors_filtered(name), _authors_decayed(name))
        g = groups.setdefault(key, {"params": [], "names": [], "filtered": key[0],
                                    "weight_decay": weight_decay if key[1] else 0.0, **group_options})
        g["params"].append(p)
        g["names"].append(name)
    return [groups[k] for k in sorted(groups, reverse=True)]


_CTYPES = {torch.float32: ctypes.c_float, torch.int64: ctypes.c_int64}


class _Cpu:
    """CPU tensors: float32, stepped by libmofo's CPU code; the state is host memory."""
    options = {}
    dtypes = (torch.float32,)

    @staticmethod
    def view(ptr, n, dtype, owner, device):
        """A tensor over n entries of libmofo's memory at ptr, keeping owner (the optimizer) alive."""
        arr = (_CTYPES[dtype] * n).from_address(ptr)
        arr._owner = owner
        return torch.frombuffer(arr, dtype=dtype)

    @staticmethod
    def on(device):
        return contextlib.nullcontext()

    @staticmethod
    def stream(device):
        return None

    @staticmethod
    def wait(device):
        pass


class _DeviceArray:
    """n entries of libmofo's device memory at ptr, as __cuda_array_interface__ describes them to
    torch.as_tensor; the tensor keeps this object, and so owner (the optimizer), alive."""

    def __init__(self, ptr, n, dtype, owner):
        typestr = {torch.float32: "<f4", torch.int64: "<i8"}[dtype]
        self.__cuda_array_interface__ = {"shape": (n,), "typestr": typestr, "data": (ptr, False), "version": 2,
                                         "strides": None}
        self._owner = owner


class _Cuda:
    """CUDA tensors: float32, or bfloat16 with fp32 master weights, stepped by libmofo's CUDA backend
    on the tensors' device and torch's current stream there; the state is device memory."""
    options = {"device": "cuda"}
    dtypes = (torch.float32, torch.bfloat16)

    @staticmethod
    def view(ptr, n, dtype, owner, device):
        return torch.as_tensor(_DeviceArray(ptr, n, dtype, owner), device=device)

    @staticmethod
    def on(device):
        return torch.cuda.device(device)

    @staticmethod
    def stream(device):
        return torch.cuda.current_stream(device).cuda_stream

    @staticmethod
    def wait(device):
        """Until the work queued on torch's current stream (copies into the state) is done."""
        torch.cuda.current_stream(device).synchronize()


def _placement(p):
    """How tensor p's device is stepped: _Cpu or _Cuda."""
    kinds = {"cpu": _Cpu, "cuda": _Cuda}
    if p.device.type not in kinds:
        raise RuntimeError("mofo: a tensor on %s: MoFO steps CPU and CUDA tensors" % (p.device,))
    return kinds[p.device.type]


class _Group:
    """The libmofo optimizer of one param group, the tensors it holds (in order) and their device."""

    def __init__(self, c, params, names, placement, device):
        self.c, self.params, self.names, self.placement, self.device = c, params, names, placement, device


class MoFO(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, alpha=0.15,
                 filter="momentum", partition="tensor", rule="adamw", exact_k=False, rows_per_block=1, seed=0,
                 shards=None, process_group=None):
        if not (lr >= 0):
            raise ValueError("mofo: lr %r: must be >= 0" % (lr,))
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("mofo: betas %r: each must be in [0, 1)" % (betas,))
        if not (eps > 0):
            raise ValueError("mofo: eps %r: must be > 0" % (eps,))
        if not (weight_decay >= 0):
            raise ValueError("mofo: weight_decay %r: must be >= 0" % (weight_decay,))
        if not (0 < alpha <= 1):
            raise ValueError("mofo: alpha %r: must be in (0, 1]" % (alpha,))
        for what, value, allowed in (("filter", filter, FILTERS), ("partition", partition, PARTITIONS),
                                     ("rule", rule, RULES)):
            if value not in allowed:
                raise ValueError("mofo: %s %r: use one of %s" % (what, value, ", ".join(allowed)))
        self._options = {"rule": rule, "filter": filter, "partition": partition,
                         "ties": "exact-k" if exact_k else "keep", "rows_per_block": int(rows_per_block),
                         "seed": int(seed)}
        self._shards = {}
        for p, place in (shards or {}).items():
            offset, full = (int(x) for x in place)
            if not (0 <= offset and offset + p.numel() <= full):
                raise ValueError("mofo: a shard of %d entries at offset %d does not fit a tensor of %d" %
                                 (p.numel(), offset, full))
            self._shards[id(p)] = full
        if self._shards and (partition != "tensor" or exact_k):
            raise ValueError("mofo: sharded parameters need partition='tensor' and exact_k=False")
        self._process_group = process_group
        self._groups = []
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, alpha=alpha, filtered=None)
        super().__init__(params, defaults)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        self._groups.append(None)

    # ---- the libmofo optimizers ----

    def _names(self, gi, group):
        names = group.get("names")
        return list(names) if names else ["param_groups[%d][%d]" % (gi, j) for j in range(len(group["params"]))]

    def _build(self, gi, group, params):
        names = self._names(gi, group)
        index = {id(p): j for j, p in enumerate(group["params"])}
        placement, device = _placement(params[0]), params[0].device
        for p in params:
            if p.device != device:
                raise RuntimeError("mofo: param group %d holds tensors on %s and %s; a group's tensors must share one "
                                   "device" % (gi, device, p.device))
            self._check_param(placement, p, names[index[id(p)]])
        if self._shards and placement is not _Cpu:
            raise RuntimeError("mofo: sharded parameters are stepped on the CPU only (param group %d is on %s)" %
                               (gi, device))
        opts = dict(self._options, beta1=repr(float(group["betas"][0])), beta2=repr(float(group["betas"][1])),
                    eps=repr(float(group["eps"])), threads=torch.get_num_threads(), **placement.options)
        c = lib.Optimizer(opts)
        wd, alpha = repr(float(group["weight_decay"])), repr(float(group["alpha"]))
        cgroups = {}
        held = []
        with placement.on(device):
            if placement.stream(device) is not None:
                c.set_stream(placement.stream(device))  # before the bf16 master weights are made on it
            for p in params:
                filtered = group["filtered"] if group["filtered"] is not None else p.dim() >= 2
                if filtered not in cgroups:
                    cgroups[filtered] = c.add_group(wd, alpha, filtered)
                name = names[index[id(p)]]
                bf16 = p.dtype == torch.bfloat16
                i = c.add(name, p.data_ptr(), p.data_ptr(), list(p.shape), cgroups[filtered], bf16=bf16)
                n = p.numel()
                st = self.state[p]
                st["step"] = torch.zeros((), dtype=torch.float32)
                st["exp_avg"] = placement.view(c.m(i), n, torch.float32, c, device).view(p.shape)
                if c.v(i):
                    st["exp_avg_sq"] = placement.view(c.v(i), n, torch.float32, c, device).view(p.shape)
                st["ever_updated_bits"] = placement.view(c.touched(i), (n + 63) // 64, torch.int64, c, device)
                if bf16:
                    st["master_param"] = placement.view(c.master(i), n, torch.float32, c, device).view(p.shape)
                held.append(name)
                if id(p) in self._shards:
                    c.set_shard(i, self._shards[id(p)])
        if any(id(p) in self._shards for p in params):
            c.set_allreduce(self._allreduce)
        g = _Group(c, list(params), held, placement, device)
        self._groups[gi] = g
        return g

    def _allreduce(self, counts):
        import torch.distributed as dist
        t = torch.frombuffer(counts, dtype=torch.int64)  # the counts stay below 2^63
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self._process_group)

    @staticmethod
    def _check_param(placement, p, name):
        if p.dtype not in placement.dtypes:
            raise TypeError("mofo: %s is %s on %s: MoFO steps %s parameters there" %
                            (name, p.dtype, p.device, " or ".join(str(d) for d in placement.dtypes)))
        if not p.is_contiguous():
            raise RuntimeError("mofo: %s is not contiguous" % name)

    @staticmethod
    def _grad(p, name):
        g = p.grad
        if g.is_sparse:
            raise RuntimeError("mofo: %s has a sparse gradient, which MoFO does not support" % name)
        if g.dtype != p.dtype or g.device != p.device:
            raise TypeError("mofo: %s: gradient of %s on %s for a parameter of %s on %s" %
                            (name, g.dtype, g.device, p.dtype, p.device))
        return g if g.is_contiguous() else g.contiguous()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for gi, group in enumerate(self.param_groups):
            g = self._groups[gi]
            if g is None:
                live = [p for p in group["params"] if p.grad is not None]
                if not live:
                    continue
                g = self._build(gi, group, live)
            grads = []
            for i, (p, name) in enumerate(zip(g.params, g.names)):
                if p.grad is None:
                    raise RuntimeError("mofo: %s has no gradient, but its group has stepped with it; MoFO steps "
                                       "a group's tensors together (freeze it before the first step, or "
                                       "give it a zero gradient)" % name)
                grads.append(self._grad(p, name))
                g.c.set(i, p.data_ptr(), grads[-1].data_ptr())
            with g.placement.on(g.device):
                if g.placement.stream(g.device) is not None:
                    g.c.set_stream(g.placement.stream(g.device))
                g.c.step(group["lr"])
            n = float(g.c.steps())
            for p in g.params:
                self.state[p]["step"].fill_(n)
        return loss

    def stats(self):
        """The last step's statistics over all groups: entries, updated (entries moved by the last
        step), ever_updated (moved at least once), coverage (ever_updated / entries), step."""
        out = {"entries": 0, "updated": 0, "ever_updated": 0, "step": 0}
        for g in self._groups:
            if g is not None:
                s = g.c.stats()
                for k in ("entries", "updated", "ever_updated"):
                    out[k] += s[k]
                out["step"] = max(out["step"], s["step"])
        out["coverage"] = out["ever_updated"] / out["entries"] if out["entries"] else 0.0
        out["updated_fraction"] = out["updated"] / out["entries"] if out["entries"] else 0.0
        return out

    # ---- state ----

    def state_dict(self):
        sd = super().state_dict()  # packs self.state by parameter index, as torch does
        sd["state"] = {k: {n: t.clone() for n, t in v.items()} for k, v in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict):
        groups, saved = self.param_groups, state_dict["param_groups"]
        if len(groups) != len(saved) or any(len(a["params"]) != len(b["params"]) for a, b in zip(groups, saved)):
            raise ValueError("mofo: the state dict's param groups do not match this optimizer's")
        if any(g is not None for g in self._groups):
            raise RuntimeError("mofo: load_state_dict must come before the first step")
        for group, sg in zip(groups, saved):
            for k, v in sg.items():
                if k != "params":
                    group[k] = v
        for gi, (group, sg) in enumerate(zip(groups, saved)):
            with_state = [(p, k) for p, k in zip(group["params"], sg["params"]) if k in state_dict["state"]]
            if not with_state:
                continue
            g = self._build(gi, group, [p for p, _ in with_state])
            steps = set()
            for p, k in with_state:
                src, dst = state_dict["state"][k], self.state[p]
                for key in ("exp_avg", "exp_avg_sq", "ever_updated_bits", "master_param"):
                    if key == "master_param" and key not in src:
                        continue  # a state saved from fp32 parameters: the masters are the weights
                    if key in dst:
                        if key not in src or src[key].numel() != dst[key].numel():
                            raise ValueError("mofo: state of parameter %d: %s missing or of another size" % (k, key))
                        dst[key].copy_(src[key].reshape(dst[key].shape))
                steps.add(int(src["step"]))
            if len(steps) != 1:
                raise ValueError("mofo: group %d: its tensors were saved at different steps %s" % (gi, sorted(steps)))
            g.placement.wait(g.device)
            g.c.restore(steps.pop())
            for p, _ in with_state:
                self.state[p]["step"].fill_(float(g.c.steps()))
