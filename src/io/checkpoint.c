#define _POSIX_C_SOURCE 200809L
#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic_file.h"
#include "json.h"
#include "strbuf.h"

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int read_file(const char *path, char **out, size_t *len, mofo_err *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return mofo_errf(err, MOFO_EIO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n < cap - 1) break;
        char *nb = realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return mofo_errf(err, MOFO_EIO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

void mofo_ckpt_close(mofo_ckpt *c) {
    if (!c) return;
    for (int i = 0; i < c->n_files; i++) mofo_st_close(c->files[i]);
    free(c->files);
    mofo_json_free(c->index_doc);
    free(c->index_path);
    free(c->config);
    free(c->config_path);
    free(c->dir);
    free(c);
}

static int open_index(mofo_ckpt *c, mofo_err *err) {
    char *text;
    size_t len;
    int rc = read_file(c->index_path, &text, &len, err);
    if (rc) return rc;
    mofo_json_doc *doc = mofo_json_parse(text, len, err);
    free(text);
    if (!doc) return mofo_err_prefix(err, "%s", c->index_path);
    c->index_doc = doc;
    const mofo_json *map = mofo_json_get(mofo_json_root(doc), "weight_map");
    if (!map || map->type != MOFO_JSON_OBJECT || map->count == 0)
        return mofo_errf(err, MOFO_EFORMAT, "%s: missing or empty 'weight_map' object", c->index_path);
    c->files = calloc(map->count, sizeof *c->files);
    if (!c->files) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", c->index_path);
    for (const mofo_json *e = map->child; e; e = e->next) {
        if (e->type != MOFO_JSON_STRING)
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': the shard is not a string", c->index_path, e->key);
        if (strchr(e->str, '/') || strcmp(e->str, "..") == 0 || e->str[0] == '.' || strlen(e->str) != e->len)
            return mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s': shard name '%s' is not a file in the directory",
                             c->index_path, e->key, e->str);
        int seen = 0;
        for (const mofo_json *p = map->child; p != e && !seen; p = p->next) seen = strcmp(p->str, e->str) == 0;
        if (seen) continue;
        char *path = path_join(c->dir, e->str);
        if (!path) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
        rc = mofo_st_open(&c->files[c->n_files], path, err);
        free(path);
        if (rc) return rc;
        c->n_files++;
    }
    return 0;
}

int mofo_ckpt_open(mofo_ckpt **out, const char *dir, mofo_err *err) {
    *out = NULL;
    mofo_ckpt *c = calloc(1, sizeof *c);
    if (!c || !(c->dir = path_join(dir, "")) || !(c->config_path = path_join(dir, "config.json"))) {
        mofo_ckpt_close(c);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    int rc = read_file(c->config_path, &c->config, &c->config_len, err);
    if (rc == 0) {
        char *single = path_join(dir, "model.safetensors");
        if (!single) {
            rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        } else if (file_exists(single)) {
            c->files = calloc(1, sizeof *c->files);
            rc = c->files ? mofo_st_open(&c->files[0], single, err) : mofo_errf(err, MOFO_ENOMEM, "out of memory");
            if (rc == 0) c->n_files = 1;
        } else {
            c->index_path = path_join(dir, "model.safetensors.index.json");
            if (!c->index_path)
                rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
            else if (!file_exists(c->index_path))
                rc = mofo_errf(err, MOFO_EIO, "%s: neither model.safetensors nor model.safetensors.index.json found",
                               dir);
            else
                rc = open_index(c, err);
        }
        free(single);
    }
    if (rc) {
        mofo_ckpt_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

const mofo_st_tensor *mofo_ckpt_find(const mofo_ckpt *c, const char *name, const mofo_st_file **file) {
    if (c->index_doc) {
        const mofo_json *map = mofo_json_get(mofo_json_root(c->index_doc), "weight_map");
        const mofo_json *e = mofo_json_get(map, name);
        if (!e) return NULL;
        for (int i = 0; i < c->n_files; i++) {
            const char *base = strrchr(c->files[i]->label, '/');
            base = base ? base + 1 : c->files[i]->label;
            if (strcmp(base, e->str) == 0) {
                if (file) *file = c->files[i];
                return mofo_st_find(c->files[i], name);
            }
        }
        return NULL;
    }
    for (int i = 0; i < c->n_files; i++) {
        const mofo_st_tensor *t = mofo_st_find(c->files[i], name);
        if (t) {
            if (file) *file = c->files[i];
            return t;
        }
    }
    return NULL;
}

const char *mofo_ckpt_where(const mofo_ckpt *c) {
    return c->index_path ? c->index_path : c->n_files ? c->files[0]->label : c->dir;
}

/* ---- writing ---- */

uint16_t mofo_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7FFFu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

uint16_t mofo_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u);
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* rounds to infinity */
    if (ax < 0x38800000u) {                                   /* subnormal or zero in f16 */
        if (ax < 0x33000000u) return (uint16_t)sign;          /* below half the smallest subnormal */
        uint32_t man = (ax & 0x7FFFFFu) | 0x800000u;
        int shift = 126 - (int)(ax >> 23); /* the f16 subnormal unit is 2^-24 */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xFFFu + ((ax >> 13) & 1);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static size_t tensor_bytes(const mofo_ckpt_tensor *t) {
    size_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n * mofo_dtype_size(t->dtype);
}

/* safetensors' own order: larger dtypes first, then by name */
static int by_dtype_name(const void *a, const void *b) {
    const mofo_ckpt_tensor *x = *(const mofo_ckpt_tensor *const *)a, *y = *(const mofo_ckpt_tensor *const *)b;
    size_t sx = mofo_dtype_size(x->dtype), sy = mofo_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Writes tensors t[0..n) to path, converting where needed. */
static int save_shard(const char *path, const mofo_ckpt_tensor *const *t, int n, mofo_err *err) {
    mofo_st_writer *w = mofo_st_writer_new();
    void **bufs = calloc(n ? (size_t)n : 1, sizeof *bufs);
    int rc = w && bufs ? mofo_st_writer_meta(w, "format", "pt", err) : mofo_errf(err, MOFO_ENOMEM, "out of memory");
    for (int i = 0; i < n && rc == 0; i++) {
        size_t numel = tensor_bytes(t[i]) / mofo_dtype_size(t[i]->dtype);
        const void *data = t[i]->data;
        if (t[i]->dtype == MOFO_DT_BF16 || t[i]->dtype == MOFO_DT_F16) {
            uint16_t *h = malloc(numel ? numel * 2 : 1);
            if (!h) {
                rc = mofo_errf(err, MOFO_ENOMEM, "%s: tensor '%s': out of memory", path, t[i]->name);
                break;
            }
            for (size_t j = 0; j < numel; j++)
                h[j] = t[i]->dtype == MOFO_DT_BF16 ? mofo_f32_to_bf16(t[i]->data[j]) : mofo_f32_to_f16(t[i]->data[j]);
            bufs[i] = h;
            data = h;
        } else if (t[i]->dtype != MOFO_DT_F32) {
            rc = mofo_errf(err, MOFO_EINVAL, "%s: tensor '%s': cannot write dtype %s", path, t[i]->name,
                           mofo_dtype_name(t[i]->dtype));
            break;
        }
        rc = mofo_st_writer_add(w, t[i]->name, t[i]->dtype, t[i]->ndim, t[i]->shape, data, err);
    }
    if (rc == 0) rc = mofo_st_writer_save(w, path, err);
    for (int i = 0; i < n && bufs; i++) free(bufs[i]);
    free(bufs);
    mofo_st_writer_free(w);
    return rc;
}

static int write_text(const char *path, const char *text, size_t len, mofo_err *err) {
    mofo_afile af;
    int rc = mofo_afile_open(&af, path, err);
    if (rc == 0) rc = mofo_afile_write(&af, text, len, err);
    if (rc == 0) return mofo_afile_commit(&af, err);
    mofo_afile_abort(&af);
    return rc;
}

int mofo_ckpt_save(const char *dir, const char *config, size_t config_len, const mofo_ckpt_tensor *t, int n,
                   size_t max_shard_bytes, mofo_err *err) {
    if (max_shard_bytes == 0) max_shard_bytes = MOFO_CKPT_DEFAULT_SHARD;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return mofo_errf(err, MOFO_EIO, "%s: cannot create the directory: %s", dir, strerror(errno));
    const mofo_ckpt_tensor **order = malloc((n ? (size_t)n : 1) * sizeof *order);
    int *shard_of = malloc((n ? (size_t)n : 1) * sizeof *shard_of);
    char *cfg_path = path_join(dir, "config.json"), *single = path_join(dir, "model.safetensors"),
         *index = path_join(dir, "model.safetensors.index.json");
    int rc = 0;
    if (!order || !shard_of || !cfg_path || !single || !index) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    if (rc == 0) rc = write_text(cfg_path, config, config_len, err);
    size_t total = 0;
    int n_shards = 1;
    if (rc == 0) {
        /* shards in the caller's order (model order), each up to the limit; a larger tensor alone */
        size_t cur = 0;
        for (int i = 0; i < n; i++) {
            size_t b = tensor_bytes(&t[i]);
            if (cur > 0 && cur + b > max_shard_bytes) {
                n_shards++;
                cur = 0;
            }
            cur += b;
            total += b;
            shard_of[i] = n_shards - 1;
        }
    }
    mofo_strbuf map = {0};
    for (int s = 0; s < n_shards && rc == 0; s++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (shard_of[i] == s) order[k++] = &t[i];
        qsort(order, (size_t)k, sizeof *order, by_dtype_name);
        char name[64];
        if (n_shards == 1)
            snprintf(name, sizeof name, "model.safetensors");
        else
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *path = path_join(dir, name);
        rc = path ? save_shard(path, order, k, err) : mofo_errf(err, MOFO_ENOMEM, "out of memory");
        free(path);
        for (int i = 0; i < k && rc == 0; i++) {
            mofo_sb_puts(&map, map.len ? ",\n    " : "    ");
            mofo_sb_json_string(&map, order[i]->name, strlen(order[i]->name));
            mofo_sb_printf(&map, ": \"%s\"", name);
        }
    }
    if (rc == 0 && n_shards > 1) {
        mofo_strbuf idx = {0};
        mofo_sb_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %zu\n  },\n  \"weight_map\": {\n%s\n  }\n}\n",
                       total, map.data ? map.data : "");
        rc = idx.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory") : write_text(index, idx.data, idx.len, err);
        mofo_sb_free(&idx);
        if (rc == 0 && file_exists(single)) unlink(single); /* transformers would prefer a stale single file */
    } else if (rc == 0 && file_exists(index)) {
        unlink(index); /* a stale index would point at old shards */
    }
    mofo_sb_free(&map);
    free(order);
    free(shard_of);
    free(cfg_path);
    free(single);
    free(index);
    return rc;
}
