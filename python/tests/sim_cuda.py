"""mofo.torch's CUDA path on the simulated device, on every machine: libmofo's CUDA kernels compiled
for tests/cudasim (the CPU simulation of the kernels) as a shared library, which MOFO_LIBRARY names
(ctest python_torch_cudasim). The simulated device's memory is host memory that the simulator
tracks, so a "device tensor" here is a CPU tensor over memory from the simulator's cudaMalloc, and
the binding's CUDA placement is replaced by one that views its state as host tensors and runs on a
stream the simulator made. Everything else is the CUDA path as on a GPU: fp32 and bf16 parameters
(master weights), the optimizer's stream, gradients in new arrays every step, state dicts and
refusals, against the CPU path bit for bit (cuda_cases.py). Not picked up by `unittest discover`
(one process loads one libmofo); exits 77 only where torch is not installed."""

import contextlib
import ctypes
import gc
import os
import sys
import unittest

try:
    import torch
except ImportError:
    print("skipped: torch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mofo.lib  # noqa: E402
import mofo.torch  # noqa: E402
from cuda_cases import DeviceCases  # noqa: E402

sim = mofo.lib._lib
if not hasattr(sim, "cudaStreamCreate"):
    sys.exit("sim_cuda.py: MOFO_LIBRARY=%s is not the simulator's libmofo (build target mofo_cudasim_shared)" %
             mofo.lib.LIBRARY_PATH)
sim.cudaMalloc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
sim.cudaFree.argtypes = [ctypes.c_void_p]
sim.cudaStreamCreate.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
sim.cudaStreamDestroy.argtypes = [ctypes.c_void_p]
sim.cudaStreamSynchronize.argtypes = [ctypes.c_void_p]


class SimCuda(mofo.torch._Cuda):
    """The CUDA placement on the simulated device: views over its (host) memory, its stream."""
    handle = None

    @staticmethod
    def view(ptr, n, dtype, owner, device):
        return mofo.torch._Cpu.view(ptr, n, dtype, owner, device)

    @staticmethod
    def on(device):
        return contextlib.nullcontext()

    @staticmethod
    def stream(device):
        return SimCuda.handle

    @staticmethod
    def wait(device):
        assert sim.cudaStreamSynchronize(SimCuda.handle) == 0


class OnTheSimulator(DeviceCases, unittest.TestCase):
    exact = True

    def setUp(self):
        self.allocations = []
        handle = ctypes.c_void_p()
        self.assertEqual(sim.cudaStreamCreate(ctypes.byref(handle)), 0)
        SimCuda.handle = handle.value
        self.placement = mofo.torch._placement
        mofo.torch._placement = lambda p: SimCuda

    def tearDown(self):
        mofo.torch._placement = self.placement
        gc.collect()  # the optimizers, and their device memory, before the tensors' memory
        for ptr in self.allocations:
            self.assertEqual(sim.cudaFree(ptr), 0)
        self.assertEqual(sim.cudaStreamDestroy(SimCuda.handle), 0)

    def device_tensor(self, values):
        """A tensor over fresh simulated device memory holding values."""
        n = values.numel() * values.element_size()
        ptr = ctypes.c_void_p()
        self.assertEqual(sim.cudaMalloc(ctypes.byref(ptr), n), 0)
        self.allocations.append(ptr.value)
        t = torch.frombuffer((ctypes.c_char * n).from_address(ptr.value), dtype=values.dtype).view(values.shape)
        t.copy_(values)
        return t


if __name__ == "__main__":
    unittest.main()
