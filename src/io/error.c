/* The error record: formatted messages, never printed by the library. */
#include "mofo/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int mofo_errf(mofo_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int mofo_err_prefix(mofo_err *err, const char *fmt, ...) {
    if (!err) return MOFO_EINVAL;
    char prefix[MOFO_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[MOFO_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3, m = strlen(old);
    if (m > rest) m = rest;
    memcpy(err->msg + n + 2, old, m);
    err->msg[n + 2 + m] = '\0';
    return err->code;
}

const char *mofo_strstatus(int code) {
    switch (code) {
    case MOFO_OK: return "ok";
    case MOFO_EINVAL: return "invalid argument";
    case MOFO_ENOMEM: return "out of memory";
    case MOFO_EIO: return "input/output error";
    case MOFO_EFORMAT: return "malformed file";
    case MOFO_ENONFINITE: return "non-finite value";
    case MOFO_ENODEV: return "no device";
    case MOFO_EDEVICE: return "device error";
    default: return "unknown error";
    }
}
