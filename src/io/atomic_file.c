#define _POSIX_C_SOURCE 200809L
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int mofo_afile_open(mofo_afile *af, const char *path, mofo_err *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path) + 32;
    af->path = dup_str(path);
    af->tmp = malloc(n);
    if (!af->path || !af->tmp) { /* nothing created yet: tmp holds no name to unlink */
        free(af->path);
        free(af->tmp);
        memset(af, 0, sizeof *af);
        return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", path);
    }
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    const char *fail = getenv("MOFO_FAIL_WRITE_AFTER_BYTES");
    af->fail_after = fail && *fail ? strtoll(fail, NULL, 10) : -1;
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int e = errno;
        mofo_afile_abort(af);
        return mofo_errf(err, MOFO_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    return 0;
}

int mofo_afile_write(mofo_afile *af, const void *data, size_t n, mofo_err *err) {
    if (af->fail_after >= 0 && af->written + (long long)n > af->fail_after) {
        size_t part = (size_t)(af->fail_after - af->written);
        if (part) fwrite(data, 1, part, af->f);
        af->written = af->fail_after;
        return mofo_errf(err, MOFO_EIO, "%s: write failed: %s (injected by MOFO_FAIL_WRITE_AFTER_BYTES=%lld)",
                         af->path, strerror(ENOSPC), af->fail_after);
    }
    af->written += (long long)n;
    if (n && fwrite(data, 1, n, af->f) != n) {
        int e = errno;
        return mofo_errf(err, MOFO_EIO, "%s: write failed: %s", af->path, strerror(e));
    }
    return 0;
}

int mofo_afile_commit(mofo_afile *af, mofo_err *err) {
    int rc = 0;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) {
        rc = mofo_errf(err, MOFO_EIO, "%s: write failed: %s", af->path, strerror(errno));
    }
    if (fclose(af->f) != 0 && rc == 0) {
        rc = mofo_errf(err, MOFO_EIO, "%s: write failed: %s", af->path, strerror(errno));
    }
    af->f = NULL;
    if (rc == 0 && rename(af->tmp, af->path) != 0) {
        rc = mofo_errf(err, MOFO_EIO, "%s: cannot rename %s into place: %s", af->path, af->tmp,
                       strerror(errno));
    }
    if (rc == 0) {
        /* make the rename itself durable */
        char *dir = dup_str(af->path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = ".";
            if (slash) {
                slash[slash == dir ? 1 : 0] = '\0';
                d = dir;
            }
            int fd = open(d, O_RDONLY);
            if (fd >= 0) {
                fsync(fd);
                close(fd);
            }
            free(dir);
        }
        free(af->tmp);
        af->tmp = NULL;
    }
    mofo_afile_abort(af);
    return rc;
}

void mofo_afile_abort(mofo_afile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    free(af->path);
    memset(af, 0, sizeof *af);
}

int mofo_write_file_atomic(const char *path, const void *data, size_t n, mofo_err *err) {
    mofo_afile af;
    int rc = mofo_afile_open(&af, path, err);
    if (rc) return rc;
    if ((rc = mofo_afile_write(&af, n ? data : "", n, err))) {
        mofo_afile_abort(&af);
        return rc;
    }
    return mofo_afile_commit(&af, err);
}
