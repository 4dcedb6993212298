"""The cases of mofo.torch's CUDA path, written once for a GPU (test_torch_cuda.py) and for the
simulated device (sim_cuda.py): the same model and gradients through the CPU path and the device
path, compared after every step. A test class mixes DeviceCases with unittest.TestCase and gives
device_tensor (a tensor on the device holding given values) and exact (whether the device must
equal the CPU bit for bit: on the simulator, whose kernels run the CPU's expressions in the CPU's
order; on a GPU within 1e-5 relative, the issue's bound, since a GPU may contract or order sums
otherwise)."""

import torch

import mofo.torch

STEPS = 4


def rel(a, b):
    d = (a.double() - b.double()).norm()
    n = b.double().norm()
    return float(d / n) if n > 0 else float(d)


def init_values(dtype):
    """Two matrices and a bias, bf16-exact (so that a bf16 run starts where the fp32 run does)."""
    g = torch.Generator().manual_seed(7)
    shapes = {"w1": (48, 40), "w2": (33, 48), "b2": (33,)}
    return {k: torch.randn(s, generator=g).to(torch.bfloat16).to(dtype) for k, s in shapes.items()}


def grad_values(step, shapes, dtype):
    g = torch.Generator().manual_seed(100 + step)
    return {k: (torch.randn(s, generator=g) * 0.1).to(torch.bfloat16).to(dtype) for k, s in shapes.items()}


def groups(params):
    """Two groups with their own lr, weight decay and alpha; the bias dense."""
    return [{"params": [params["w1"]], "names": ["w1"], "lr": 1e-2, "weight_decay": 0.1, "alpha": 0.15},
            {"params": [params["w2"], params["b2"]], "names": ["w2", "b2"], "lr": 3e-3, "alpha": 0.3}]


class DeviceCases:
    exact = True

    def device_tensor(self, values):
        raise NotImplementedError

    def _run(self, dtype, steps=STEPS, sd=None, first=0, moved=True):
        """steps steps on the device (from sd, the state dicts of a run stopped at step `first`,
        when given); returns the optimizer, its parameters, the entries updated per step and the
        state dicts to resume from. A scheduler halves lr after 2 steps; the gradients are new
        tensors every step (as backward makes them) unless moved is False."""
        params = {k: torch.nn.Parameter(self.device_tensor(v)) for k, v in init_values(dtype).items()}
        if sd is not None:
            with torch.no_grad():
                for k, v in sd["params"].items():
                    params[k].copy_(v)
        opt = mofo.torch.MoFO(groups(params), betas=(0.9, 0.99))
        if sd is not None:
            opt.load_state_dict(sd["opt"])
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        if sd is not None:
            sched.load_state_dict(sd["sched"])
        counts = []
        for k in range(first, first + steps):
            grads = grad_values(k, {n: p.shape for n, p in params.items()}, dtype)
            for n, p in params.items():
                if moved or p.grad is None:
                    p.grad = self.device_tensor(grads[n])
                else:
                    p.grad.copy_(grads[n])
            opt.step()
            sched.step()
            counts.append(opt.stats()["updated"])
        saved = {"opt": opt.state_dict(), "sched": sched.state_dict(),
                 "params": {k: p.detach().clone() for k, p in params.items()}}
        return opt, params, counts, saved

    def _cpu_run(self, steps=STEPS):
        params = {k: torch.nn.Parameter(v) for k, v in init_values(torch.float32).items()}
        opt = mofo.torch.MoFO(groups(params), betas=(0.9, 0.99))
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        counts = []
        for k in range(steps):
            grads = grad_values(k, {n: p.shape for n, p in params.items()}, torch.float32)
            for n, p in params.items():
                p.grad = grads[n]
            opt.step()
            sched.step()
            counts.append(opt.stats()["updated"])
        return opt, params, counts

    def assertClose(self, got, want, what):
        got = got.detach().cpu()
        if self.exact:
            self.assertTrue(torch.equal(got, want), "%s: %d entries differ from the CPU path (rel %.3g)" %
                            (what, int((got != want).sum()), rel(got, want)))
        else:
            self.assertLessEqual(rel(got, want), 1e-5, what)

    def test_fp32_equals_the_cpu_path(self):
        opt, params, counts, _ = self._run(torch.float32)
        copt, cparams, ccounts = self._cpu_run()
        self.assertEqual(counts, ccounts)
        for n in params:
            self.assertClose(params[n], cparams[n].detach(), n)
            for key in ("exp_avg", "exp_avg_sq"):
                self.assertClose(opt.state[params[n]][key], copt.state[cparams[n]][key], "%s %s" % (n, key))
        self.assertEqual(opt.stats()["ever_updated"], copt.stats()["ever_updated"])
        _, same, _, _ = self._run(torch.float32, moved=False)  # gradients written in place instead
        for n in params:
            self.assertTrue(torch.equal(same[n].detach().cpu(), params[n].detach().cpu()), n)

    def test_bf16_keeps_fp32_masters(self):
        opt, params, counts, _ = self._run(torch.bfloat16)
        copt, cparams, ccounts = self._cpu_run()
        self.assertEqual(counts, ccounts)
        for n in params:
            master = opt.state[params[n]]["master_param"]
            self.assertEqual(master.dtype, torch.float32)
            self.assertClose(master, cparams[n].detach(), n + " master weights")
            # the bf16 weights are the masters rounded to nearest even
            self.assertTrue(torch.equal(params[n].detach().cpu(), master.detach().cpu().to(torch.bfloat16)), n)
            self.assertClose(opt.state[params[n]]["exp_avg"], copt.state[cparams[n]]["exp_avg"], n + " exp_avg")

    def test_state_dict_resumes_bit_for_bit(self):
        for dtype in (torch.float32, torch.bfloat16):
            whole, wparams, _, _ = self._run(dtype)
            _, _, _, sd = self._run(dtype, steps=2)
            for st in sd["opt"]["state"].values():
                self.assertEqual(set(st), {"step", "exp_avg", "exp_avg_sq", "ever_updated_bits"} |
                                 ({"master_param"} if dtype == torch.bfloat16 else set()))
            resumed, rparams, _, _ = self._run(dtype, steps=STEPS - 2, sd=sd, first=2)
            for n in wparams:
                self.assertTrue(torch.equal(rparams[n].detach().cpu(), wparams[n].detach().cpu()), "%s %s" % (dtype, n))
                for key in ("exp_avg", "exp_avg_sq") + (("master_param",) if dtype == torch.bfloat16 else ()):
                    self.assertTrue(torch.equal(resumed.state[rparams[n]][key].cpu(), whole.state[wparams[n]][key].cpu()),
                                    "%s %s %s" % (dtype, n, key))
            self.assertEqual(resumed.stats()["ever_updated"], whole.stats()["ever_updated"])

    def test_nan_gradient_refuses_and_names_the_tensor(self):
        p = torch.nn.Parameter(self.device_tensor(torch.ones(8, 8)))
        opt = mofo.torch.MoFO([{"params": [p], "names": ["layer.weight"]}])
        g = torch.zeros(8, 8)
        g[3, 5] = float("nan")
        p.grad = self.device_tensor(g)
        with self.assertRaisesRegex(RuntimeError, "layer.weight"):
            opt.step()
        self.assertTrue(torch.equal(p.detach().cpu(), torch.ones(8, 8)))

    def test_unsupported_dtype_is_named(self):
        p = torch.nn.Parameter(self.device_tensor(torch.ones(4, 4, dtype=torch.float16)))
        p.grad = self.device_tensor(torch.ones(4, 4, dtype=torch.float16))
        with self.assertRaisesRegex(TypeError, "torch.float16 on .*torch.float32 or torch.bfloat16"):
            mofo.torch.MoFO([p]).step()
