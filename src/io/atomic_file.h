/* Files written whole or not at all: data goes to "PATH.tmp.PID", is flushed and fsync'd, then
 * renamed over PATH (and the directory fsync'd), so a crash or a full disk at any moment leaves
 * the previous version of PATH intact. */
#ifndef MOFO_ATOMIC_FILE_H
#define MOFO_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "mofo/error.h"

typedef struct mofo_afile {
    FILE *f;
    char *path; /* the final name */
    char *tmp;  /* the temporary name written first */
    long long written;    /* bytes written so far */
    long long fail_after; /* test hook: with MOFO_FAIL_WRITE_AFTER_BYTES=N in the environment, a write
                             that would take this file past N bytes fails as a full disk would; -1 */
} mofo_afile;

int mofo_afile_open(mofo_afile *af, const char *path, mofo_err *err);
int mofo_afile_write(mofo_afile *af, const void *data, size_t n, mofo_err *err);
/* Flushes, syncs and renames into place; on failure the temporary file is removed. */
int mofo_afile_commit(mofo_afile *af, mofo_err *err);
/* Drops the temporary file; PATH is untouched. Safe after a failed open or commit. */
void mofo_afile_abort(mofo_afile *af);
/* Writes the n bytes of data as the whole of path (open, write, commit; abort on failure). */
int mofo_write_file_atomic(const char *path, const void *data, size_t n, mofo_err *err);

#endif
