"""libmofo through ctypes: the C API of include/mofo/optim.h, one optimizer object per handle.

ctypes needs no compile step on the user's side: the shared library the CMake build produced is
found, in this order, through the MOFO_LIBRARY environment variable (the file), next to this
package (mofo/libmofo.so, as `pip install` lays it out when the library is copied in), in the build
tree this package sits in (../build/libmofo.so from python/), or as an installed libmofo.so.0.
Options travel as strings through mofo_options_set, so no C struct of options is mirrored here."""

import ctypes
import ctypes.util
import os

_c_int64_p = ctypes.POINTER(ctypes.c_int64)


class MofoError(RuntimeError):
    """A libmofo call failed; the message is the library's (it names the tensor, option or file)."""


class _Err(ctypes.Structure):
    _fields_ = [("code", ctypes.c_int), ("msg", ctypes.c_char * 512)]


class _Group(ctypes.Structure):
    _fields_ = [("lr_scale", ctypes.c_double), ("weight_decay", ctypes.c_double), ("alpha", ctypes.c_double),
                ("filtered", ctypes.c_int)]


class _Stats(ctypes.Structure):
    _fields_ = [("step", ctypes.c_int64), ("entries", ctypes.c_int64), ("updated", ctypes.c_int64),
                ("ever_updated", ctypes.c_int64), ("coverage", ctypes.c_double), ("update_norm", ctypes.c_double),
                ("n_blocks", ctypes.c_int), ("blocks", ctypes.c_void_p), ("param_updated", _c_int64_p)]


def _candidates():
    env = os.environ.get("MOFO_LIBRARY")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    found = [os.path.join(here, "libmofo.so"), os.path.join(here, "..", "..", "build", "libmofo.so")]
    installed = ctypes.util.find_library("mofo")
    return found + ([installed] if installed else [])


def _load():
    tried = []
    for path in _candidates():
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("mofo: libmofo not found; build it (cmake --build build) and set MOFO_LIBRARY to the "
                      "libmofo.so file. Tried: " + "; ".join(tried))


_lib, LIBRARY_PATH = _load()


def _declare(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_vp, _cp, _ep = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(_Err)
_options_size = _declare("mofo_options_size", ctypes.c_size_t)
_options_init = _declare("mofo_options_init", None, _vp, ctypes.c_int)
_options_set = _declare("mofo_options_set", ctypes.c_int, _vp, _cp, _cp, _ep)
_options_check = _declare("mofo_options_check", ctypes.c_int, _vp, _ep)
_create = _declare("mofo_optim_create", _vp, _vp, _ep)
_destroy = _declare("mofo_optim_destroy", None, _vp)
_add_group = _declare("mofo_optim_add_group", ctypes.c_int, _vp, ctypes.POINTER(_Group), _ep)
_add_param = _declare("mofo_optim_add_param", ctypes.c_int, _vp, _cp, _vp, _vp, ctypes.c_int, _c_int64_p,
                      ctypes.c_int, _ep)
_add_param_bf16 = _declare("mofo_optim_add_param_bf16", ctypes.c_int, _vp, _cp, _vp, _vp, ctypes.c_int, _c_int64_p,
                           ctypes.c_int, _ep)
_set_param = _declare("mofo_optim_set_param", ctypes.c_int, _vp, ctypes.c_int, _vp, _vp, _ep)
_set_stream = _declare("mofo_optim_set_stream", ctypes.c_int, _vp, _vp, _ep)
_master = _declare("mofo_optim_master", _vp, _vp, ctypes.c_int)
_step = _declare("mofo_optim_step", ctypes.c_int, _vp, ctypes.c_double, _ep)
_stats = _declare("mofo_optim_stats", ctypes.POINTER(_Stats), _vp)
_m = _declare("mofo_optim_m", _vp, _vp, ctypes.c_int)
_v = _declare("mofo_optim_v", _vp, _vp, ctypes.c_int)
_touched = _declare("mofo_optim_touched", _vp, _vp, ctypes.c_int)
_restore = _declare("mofo_optim_restore", ctypes.c_int, _vp, ctypes.c_int64, _ep)
# int (*)(uint64_t *counts, size_t n, void *ctx): sums counts over the processes in place
ALLREDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t, ctypes.c_void_p)
_set_allreduce = _declare("mofo_optim_set_allreduce", ctypes.c_int, _vp, ALLREDUCE_FN, _vp, _ep)
_set_shard = _declare("mofo_optim_set_shard", ctypes.c_int, _vp, ctypes.c_int, ctypes.c_int64, _ep)


def _fail(err, what):
    raise MofoError("%s: %s" % (what, err.msg.decode("utf-8", "replace")))


class Optimizer:
    """One libmofo optimizer: options (name -> value, as mofo_options_set takes them), groups
    (weight_decay, alpha, filtered) and tensors added by pointer before the first step."""

    def __init__(self, options):
        self._h = None
        err = _Err()
        self._opts = ctypes.create_string_buffer(_options_size())
        _options_init(self._opts, 0)
        for k, v in options.items():
            if _options_set(self._opts, k.encode(), str(v).encode(), ctypes.byref(err)):
                raise ValueError("mofo: %s" % err.msg.decode())
        if _options_check(self._opts, ctypes.byref(err)):
            raise ValueError("mofo: %s" % err.msg.decode())
        self._h = _create(self._opts, ctypes.byref(err))
        if not self._h:
            _fail(err, "mofo_optim_create")
        self.numel = []

    def add_group(self, weight_decay, alpha, filtered):
        err = _Err()
        g = _Group(1.0, float(weight_decay), float(alpha), 1 if filtered else 0)
        gid = _add_group(self._h, ctypes.byref(g), ctypes.byref(err))
        if gid < 0:
            raise ValueError("mofo: %s" % err.msg.decode())
        return gid

    def add(self, name, data_ptr, grad_ptr, shape, group, bf16=False):
        """Registers a tensor: fp32, or bf16 (CUDA; the optimizer keeps fp32 master weights)."""
        err = _Err()
        dims = (ctypes.c_int64 * max(1, len(shape)))(*(shape or [1]))
        add = _add_param_bf16 if bf16 else _add_param
        i = add(self._h, name.encode(), data_ptr, grad_ptr, max(1, len(shape)), dims, group, ctypes.byref(err))
        if i < 0:
            _fail(err, "mofo_optim_add_param_bf16" if bf16 else "mofo_optim_add_param")
        n = 1
        for d in shape:
            n *= int(d)
        self.numel.append(n)
        return i

    def set(self, i, data_ptr, grad_ptr):
        err = _Err()
        if _set_param(self._h, i, data_ptr, grad_ptr, ctypes.byref(err)):
            _fail(err, "mofo_optim_set_param")

    def set_stream(self, stream):
        """The cudaStream_t (an integer; 0: the legacy default stream) the next steps run on."""
        err = _Err()
        if _set_stream(self._h, stream or None, ctypes.byref(err)):
            _fail(err, "mofo_optim_set_stream")

    def set_allreduce(self, fn):
        """fn(counts) sums a ctypes uint64 array over the processes in place; an exception it raises
        fails the step, and the step re-raises it."""
        def trampoline(counts, n, _ctx):
            try:
                fn((ctypes.c_uint64 * n).from_address(ctypes.addressof(counts.contents)))
                return 0
            except BaseException as e:  # noqa: B902 - handed back to step() below
                self._comm_error = e
                return 1
        self._allreduce = ALLREDUCE_FN(trampoline)  # kept alive as long as the optimizer
        self._comm_error = None
        err = _Err()
        if _set_allreduce(self._h, self._allreduce, None, ctypes.byref(err)):
            _fail(err, "mofo_optim_set_allreduce")

    def set_shard(self, i, full_numel):
        err = _Err()
        if _set_shard(self._h, i, int(full_numel), ctypes.byref(err)):
            raise ValueError("mofo: %s" % err.msg.decode())

    def step(self, lr):
        err = _Err()
        if _step(self._h, float(lr), ctypes.byref(err)):
            comm, self._comm_error = getattr(self, "_comm_error", None), None
            if comm is not None:
                raise MofoError("MoFO step refused: the all-reduce failed: %r" % (comm,)) from comm
            _fail(err, "MoFO step refused")

    def steps(self):
        """Steps taken (the bias correction's t)."""
        return _stats(self._h).contents.step

    def stats(self):
        s = _stats(self._h).contents
        per = [s.param_updated[i] for i in range(len(self.numel))] if s.param_updated else [0] * len(self.numel)
        return {"step": s.step, "entries": s.entries, "updated": s.updated, "ever_updated": s.ever_updated,
                "update_norm": s.update_norm, "param_updated": per}

    def m(self, i):
        return _m(self._h, i)

    def v(self, i):
        return _v(self._h, i)

    def master(self, i):
        return _master(self._h, i)

    def touched(self, i):
        return _touched(self._h, i)

    def restore(self, step):
        err = _Err()
        if _restore(self._h, int(step), ctypes.byref(err)):
            _fail(err, "mofo_optim_restore")

    def __del__(self):
        if getattr(self, "_h", None):
            _destroy(self._h)
            self._h = None
