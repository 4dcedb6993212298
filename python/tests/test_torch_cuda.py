"""mofo.torch's CUDA path on a GPU: the cases of cuda_cases.py with torch CUDA tensors (fp32 and bf16
against the CPU path within 1e-5 relative, the same counts of updated entries, state dicts, refusals)
and the step on a side stream. Skipped, with the reason, where torch sees no CUDA device, as on every
CI machine; there the same path runs on the simulated device (sim_cuda.py, ctest
python_torch_cudasim). Needs a libmofo built with CUDA (nvcc at build time)."""

import sys
import unittest

try:
    import torch
except ImportError:
    print("skipped: torch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

import mofo.torch
from cuda_cases import DeviceCases, init_values

NO_GPU = "no CUDA device for torch (torch.cuda.is_available() is False); the CUDA path runs on the simulator instead"


@unittest.skipUnless(torch.cuda.is_available(), NO_GPU)
class OnTheGpu(DeviceCases, unittest.TestCase):
    exact = False

    def device_tensor(self, values):
        return values.to("cuda")

    def test_steps_on_the_current_stream(self):
        """A step queued on a side stream right after the gradients were written there: equal to the
        default stream's bit for bit (libmofo waits for the stream's earlier work, not the device's)."""
        results = []
        for side in (False, True):
            p = torch.nn.Parameter(init_values(torch.float32)["w1"].cuda())
            opt = mofo.torch.MoFO([p], lr=1e-2)
            stream = torch.cuda.Stream() if side else torch.cuda.current_stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for k in range(3):
                    p.grad = torch.full_like(p, 0.01 * (k + 1)).add_(p.detach() * 0.5)  # written on the stream
                    opt.step()
            torch.cuda.synchronize()
            results.append(p.detach().cpu())
        self.assertTrue(torch.equal(results[0], results[1]))


if __name__ == "__main__":
    unittest.main()
