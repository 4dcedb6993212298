"""mofo: the Momentum-Filtered Optimizer (arXiv 2407.20999) on libmofo.

mofo.torch.MoFO is a torch.optim.Optimizer; mofo.lib holds the ctypes binding of libmofo's C API
(include/mofo/optim.h)."""

__version__ = "0.1.0"
