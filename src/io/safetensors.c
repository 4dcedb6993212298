#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "json.h"
#include "strbuf.h"

static const struct {
    const char *name;
    size_t size;
} DTYPES[MOFO_DT_COUNT] = {
    [MOFO_DT_F64] = {"F64", 8},  [MOFO_DT_F32] = {"F32", 4},   [MOFO_DT_F16] = {"F16", 2},
    [MOFO_DT_BF16] = {"BF16", 2}, [MOFO_DT_I64] = {"I64", 8},  [MOFO_DT_I32] = {"I32", 4},
    [MOFO_DT_I16] = {"I16", 2},  [MOFO_DT_I8] = {"I8", 1},     [MOFO_DT_U64] = {"U64", 8},
    [MOFO_DT_U32] = {"U32", 4},  [MOFO_DT_U16] = {"U16", 2},   [MOFO_DT_U8] = {"U8", 1},
    [MOFO_DT_BOOL] = {"BOOL", 1},
};

const char *mofo_dtype_name(mofo_dtype dt) { return dt < MOFO_DT_COUNT ? DTYPES[dt].name : "?"; }
size_t mofo_dtype_size(mofo_dtype dt) { return dt < MOFO_DT_COUNT ? DTYPES[dt].size : 0; }

int mofo_dtype_parse(const char *name, mofo_dtype *out) {
    for (int i = 0; i < MOFO_DT_COUNT; i++)
        if (strcmp(name, DTYPES[i].name) == 0) {
            *out = (mofo_dtype)i;
            return 0;
        }
    return -1;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int by_offset(const void *a, const void *b) {
    const mofo_st_tensor *x = *(const mofo_st_tensor *const *)a, *y = *(const mofo_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Fills f->tensors and f->meta from the parsed header; data starts at base, data_len bytes long. */
static int read_header(mofo_st_file *f, const mofo_json *root, const unsigned char *base,
                       size_t data_len, mofo_err *err) {
    const char *L = f->label;
    if (root->type != MOFO_JSON_OBJECT)
        return mofo_errf(err, MOFO_EFORMAT, "%s: header is a JSON %s, not an object", L,
                         mofo_json_type_name(root->type));
    f->tensors = calloc(root->count ? root->count : 1, sizeof *f->tensors);
    if (!f->tensors) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", L);
    for (const mofo_json *e = root->child; e; e = e->next) {
        if (strcmp(e->key, "__metadata__") == 0) {
            if (e->type != MOFO_JSON_OBJECT)
                return mofo_errf(err, MOFO_EFORMAT, "%s: __metadata__ is not an object", L);
            f->meta = calloc(e->count ? e->count : 1, sizeof *f->meta);
            if (!f->meta) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", L);
            for (const mofo_json *m = e->child; m; m = m->next) {
                if (m->type != MOFO_JSON_STRING)
                    return mofo_errf(err, MOFO_EFORMAT, "%s: __metadata__ value '%s' is not a string", L,
                                     m->key);
                f->meta[f->n_meta++] = (mofo_st_meta){m->key, m->str};
            }
            continue;
        }
        const char *name = e->key;
        if (strlen(name) != e->key_len)
            return mofo_errf(err, MOFO_EFORMAT, "%s: a tensor name contains a NUL byte", L);
        if (e->type != MOFO_JSON_OBJECT)
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': entry is not an object", L, name);
        const mofo_json *dt = mofo_json_get(e, "dtype"), *shape = mofo_json_get(e, "shape"),
                        *offs = mofo_json_get(e, "data_offsets");
        if (!dt || dt->type != MOFO_JSON_STRING)
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': missing or non-string dtype", L, name);
        mofo_st_tensor *t = &f->tensors[f->n_tensors];
        t->name = name;
        if (mofo_dtype_parse(dt->str, &t->dtype))
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': unknown dtype '%s'", L, name, dt->str);
        if (!shape || shape->type != MOFO_JSON_ARRAY)
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': missing or non-array shape", L, name);
        if (shape->count > MOFO_ST_MAX_DIMS)
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': %zu dimensions, at most %d supported",
                             L, name, shape->count, MOFO_ST_MAX_DIMS);
        t->ndim = (int)shape->count;
        t->numel = 1;
        int d = 0;
        for (const mofo_json *s = shape->child; s; s = s->next, d++) {
            int64_t v;
            if (!mofo_json_int64(s, &v) || v < 0 || v > ((int64_t)1 << 40))
                return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': dimension %d is not a valid size",
                                 L, name, d);
            t->shape[d] = v;
            if (v && t->numel > INT64_MAX / 16 / v)
                return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': shape too large", L, name);
            t->numel *= v;
        }
        int64_t b, end;
        if (!offs || offs->type != MOFO_JSON_ARRAY || offs->count != 2 ||
            !mofo_json_int64(offs->child, &b) || !mofo_json_int64(offs->child->next, &end))
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': data_offsets is not [begin, end]", L, name);
        if (b < 0 || end < b || (uint64_t)end > data_len)
            return mofo_errf(err, MOFO_EFORMAT,
                             "%s: tensor '%s': data_offsets [%lld, %lld] outside the %zu data bytes", L,
                             name, (long long)b, (long long)end, data_len);
        t->nbytes = (size_t)(end - b);
        if ((uint64_t)t->numel * mofo_dtype_size(t->dtype) != t->nbytes)
            return mofo_errf(err, MOFO_EFORMAT,
                             "%s: tensor '%s': shape needs %lld bytes of %s but data_offsets give %zu", L,
                             name, (long long)(t->numel * (int64_t)mofo_dtype_size(t->dtype)),
                             DTYPES[t->dtype].name, t->nbytes);
        t->data = base + b;
        f->n_tensors++;
    }
    /* no two tensors may share bytes */
    mofo_st_tensor **order = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof *order);
    if (!order) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", L);
    for (size_t i = 0; i < f->n_tensors; i++) order[i] = &f->tensors[i];
    qsort(order, f->n_tensors, sizeof *order, by_offset);
    int rc = 0;
    for (size_t i = 1; i < f->n_tensors && rc == 0; i++) {
        const mofo_st_tensor *a = order[i - 1], *c = order[i];
        if (a->nbytes && c->nbytes && (const unsigned char *)a->data + a->nbytes > (const unsigned char *)c->data)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data", L, a->name,
                           c->name);
    }
    free(order);
    return rc;
}

int mofo_st_parse(mofo_st_file **out, const void *buf, size_t len, const char *label, mofo_err *err) {
    *out = NULL;
    const unsigned char *p = buf;
    if (len < 8)
        return mofo_errf(err, MOFO_EFORMAT, "%s: truncated: %zu bytes, shorter than the 8-byte header length",
                         label, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > len - 8)
        return mofo_errf(err, MOFO_EFORMAT,
                         "%s: header length %llu runs past the end of the file (%zu bytes)", label,
                         (unsigned long long)hlen, len);
    mofo_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->label = dup_str(label))) {
        free(f);
        return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", label);
    }
    mofo_json_doc *doc = mofo_json_parse((const char *)p + 8, (size_t)hlen, err);
    if (!doc) {
        mofo_err_prefix(err, "%s: malformed JSON header", label);
        mofo_st_close(f);
        return MOFO_EFORMAT;
    }
    f->json_doc = doc;
    int rc = read_header(f, mofo_json_root(doc), p + 8 + hlen, len - 8 - (size_t)hlen, err);
    if (rc) {
        mofo_st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int mofo_st_open(mofo_st_file **out, const char *path, mofo_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return mofo_errf(err, MOFO_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mofo_errf(err, MOFO_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return mofo_errf(err, MOFO_EIO, "%s: cannot map: %s", path, strerror(e));
        }
    }
    close(fd);
    static const unsigned char empty[1];
    int rc = mofo_st_parse(out, map ? map : empty, len, path, err);
    if (rc) {
        if (map) munmap(map, len);
        return rc;
    }
    (*out)->map = map;
    (*out)->map_len = len;
    return 0;
}

void mofo_st_close(mofo_st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    mofo_json_free(f->json_doc);
    free(f->tensors);
    free(f->meta);
    free(f->label);
    free(f);
}

const mofo_st_tensor *mofo_st_find(const mofo_st_file *f, const char *name) {
    for (size_t i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *mofo_st_meta_get(const mofo_st_file *f, const char *key) {
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0) return f->meta[i].value;
    return NULL;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int mofo_st_to_f32(const mofo_st_file *f, const mofo_st_tensor *t, float *out, int64_t n, mofo_err *err) {
    if (n != t->numel)
        return mofo_errf(err, MOFO_EINVAL, "%s: tensor '%s' has %lld entries, expected %lld", f->label,
                         t->name, (long long)t->numel, (long long)n);
    const unsigned char *src = t->data;
    switch (t->dtype) {
    case MOFO_DT_F32: memcpy(out, src, (size_t)n * 4); return 0;
    case MOFO_DT_F64:
        for (int64_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            out[i] = (float)d;
        }
        return 0;
    case MOFO_DT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&out[i], &bits, 4);
        }
        return 0;
    case MOFO_DT_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            out[i] = f16_to_f32(h);
        }
        return 0;
    default:
        return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' has dtype %s, not a floating-point type",
                         f->label, t->name, DTYPES[t->dtype].name);
    }
}

/* ---- writer ---- */

typedef struct st_entry {
    char *name;
    mofo_dtype dtype;
    int ndim;
    int64_t shape[MOFO_ST_MAX_DIMS];
    const void *data;
    size_t nbytes;
} st_entry;

struct mofo_st_writer {
    st_entry *e;
    size_t n, cap;
    char **meta; /* key, value pairs */
    size_t n_meta;
};

mofo_st_writer *mofo_st_writer_new(void) { return calloc(1, sizeof(mofo_st_writer)); }

int mofo_st_writer_add(mofo_st_writer *w, const char *name, mofo_dtype dtype, int ndim,
                       const int64_t *shape, const void *data, mofo_err *err) {
    if (ndim < 0 || ndim > MOFO_ST_MAX_DIMS || dtype >= MOFO_DT_COUNT)
        return mofo_errf(err, MOFO_EINVAL, "tensor '%s': bad dtype or %d dimensions", name, ndim);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return mofo_errf(err, MOFO_EINVAL, "tensor '%s' added twice", name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        st_entry *e = realloc(w->e, cap * sizeof *e);
        if (!e) return mofo_errf(err, MOFO_ENOMEM, "out of memory adding tensor '%s'", name);
        w->e = e;
        w->cap = cap;
    }
    st_entry *t = &w->e[w->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = dup_str(name))) return mofo_errf(err, MOFO_ENOMEM, "out of memory adding '%s'", name);
    t->dtype = dtype;
    t->ndim = ndim;
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        numel *= (size_t)shape[d];
    }
    t->data = data;
    t->nbytes = numel * DTYPES[dtype].size;
    w->n++;
    return 0;
}

int mofo_st_writer_meta(mofo_st_writer *w, const char *key, const char *value, mofo_err *err) {
    char **m = realloc(w->meta, (w->n_meta + 1) * 2 * sizeof *m);
    if (!m) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    w->meta = m;
    m[2 * w->n_meta] = dup_str(key);
    m[2 * w->n_meta + 1] = dup_str(value);
    w->n_meta++;
    if (!m[2 * w->n_meta - 2] || !m[2 * w->n_meta - 1]) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    return 0;
}

int mofo_st_writer_save(mofo_st_writer *w, const char *path, mofo_err *err) {
    mofo_strbuf h = {0};
    mofo_sb_puts(&h, "{");
    if (w->n_meta) {
        mofo_sb_puts(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_meta; i++) {
            if (i) mofo_sb_puts(&h, ",");
            mofo_sb_json_string(&h, w->meta[2 * i], strlen(w->meta[2 * i]));
            mofo_sb_puts(&h, ":");
            mofo_sb_json_string(&h, w->meta[2 * i + 1], strlen(w->meta[2 * i + 1]));
        }
        mofo_sb_puts(&h, "}");
    }
    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const st_entry *t = &w->e[i];
        if (i || w->n_meta) mofo_sb_puts(&h, ",");
        mofo_sb_json_string(&h, t->name, strlen(t->name));
        mofo_sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", DTYPES[t->dtype].name);
        for (int d = 0; d < t->ndim; d++) mofo_sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        mofo_sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += t->nbytes;
    }
    mofo_sb_puts(&h, "}");
    while (!h.failed && h.len % 8) mofo_sb_puts(&h, " "); /* keep tensor data 8-byte aligned */
    if (h.failed) {
        mofo_sb_free(&h);
        return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory building the header", path);
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    mofo_afile af;
    int rc = mofo_afile_open(&af, path, err);
    if (rc == 0) rc = mofo_afile_write(&af, len8, 8, err);
    if (rc == 0) rc = mofo_afile_write(&af, h.data, h.len, err);
    for (size_t i = 0; i < w->n && rc == 0; i++) rc = mofo_afile_write(&af, w->e[i].data, w->e[i].nbytes, err);
    mofo_sb_free(&h);
    if (rc == 0) return mofo_afile_commit(&af, err);
    mofo_afile_abort(&af);
    return rc;
}

void mofo_st_writer_free(mofo_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
    for (size_t i = 0; i < 2 * w->n_meta; i++) free(w->meta[i]);
    free(w->e);
    free(w->meta);
    free(w);
}
