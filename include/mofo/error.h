/* mofo/error.h - status codes and the error record every fallible libmofo call fills.
 *
 * Library functions return 0 on success and a negative MOFO_E* code on failure. When the caller
 * passes a non-NULL mofo_err, the failing function writes a message into it that names the option,
 * tensor, file or line at fault. The library never prints, exits or aborts. */
#ifndef MOFO_ERROR_H
#define MOFO_ERROR_H

#include "mofo/export.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    MOFO_OK = 0,
    MOFO_EINVAL = -1,    /* a bad argument or option */
    MOFO_ENOMEM = -2,    /* an allocation failed */
    MOFO_EIO = -3,       /* a file could not be read or written */
    MOFO_EFORMAT = -4,   /* a file's contents are malformed */
    MOFO_ENONFINITE = -5, /* a NaN or infinity where finite numbers are required */
    MOFO_ENODEV = -6,     /* no usable device: libmofo built without CUDA, or no CUDA device here */
    MOFO_EDEVICE = -7     /* a CUDA call failed (the message names the call, file and line) */
};

#define MOFO_ERR_MSG_MAX 512

typedef struct mofo_err {
    int code;                   /* the last status, 0 when none */
    char msg[MOFO_ERR_MSG_MAX]; /* a sentence naming what is wrong and where */
} mofo_err;

/* Records a formatted message in err (which may be NULL) and returns code. */
MOFO_API int mofo_errf(mofo_err *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prepends "prefix: " to the message already in err (no-op when err is NULL); returns err->code. */
MOFO_API int mofo_err_prefix(mofo_err *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A short name of a status code ("invalid argument", ...). */
MOFO_API const char *mofo_strstatus(int code);

#ifdef __cplusplus
}
#endif
#endif
