"""python/examples/finetune_loop.py runs as its docstring says: a plain PyTorch loop with MoFO, a
schedule and clipping, whose loss falls and whose checkpoint loads back (exit 77 without torch)."""

import os
import subprocess
import sys
import tempfile
import unittest

try:
    import torch
except ImportError:
    print("skipped: torch is not installed (Debian: apt-get install python3-torch)")
    sys.exit(77)

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "finetune_loop.py")


class Example(unittest.TestCase):
    def test_loss_falls_and_the_checkpoint_loads(self):
        with tempfile.TemporaryDirectory() as d:
            ck = os.path.join(d, "ck.pt")
            r = subprocess.run([sys.executable, EXAMPLE, "--steps", "40", "--checkpoint", ck],
                               capture_output=True, text=True, env=dict(os.environ))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            saved = torch.load(ck)
            self.assertEqual(set(saved), {"model", "optimizer", "scheduler"})
            self.assertTrue(all("exp_avg" in s for s in saved["optimizer"]["state"].values()))


if __name__ == "__main__":
    unittest.main()
