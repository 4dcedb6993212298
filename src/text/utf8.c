#include "text/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mofo_utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return -1;
    }
    for (int i = 1; i < len; i++) {
        if ((size_t)i >= n) return -i;
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -i;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return len;
}

int mofo_utf8_valid(const char *s, size_t n, size_t *bad_at) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int k = mofo_utf8_next(u + i, n - i, &cp);
        if (k < 0) {
            if (bad_at) *bad_at = i;
            return 0;
        }
        i += (size_t)k;
    }
    return 1;
}

void mofo_utf8_lossy(mofo_strbuf *out, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    while (i < n) {
        uint32_t cp;
        int k = u[i] < 0x80 ? 1 : mofo_utf8_next(u + i, n - i, &cp);
        if (k > 0) {
            i += (size_t)k;
            run += (size_t)k;
            continue;
        }
        mofo_sb_append(out, s + i - run, run);
        run = 0;
        mofo_sb_append(out, "\xEF\xBF\xBD", 3);
        i += (size_t)-k;
    }
    mofo_sb_append(out, s + n - run, run);
}

int mofo_read_file(const char *path, char **data, size_t *len, mofo_err *err) {
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mofo_errf(err, MOFO_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory reading the file", path);
        }
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
        cap *= 2;
        char *nb = realloc(buf, cap);
        if (!nb) free(buf);
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return mofo_errf(err, MOFO_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}
