/* Optimizer state as safetensors: "m/NAME", "v/NAME" (F32, the parameter's shape),
 * "updated/NAME" (U8, the coverage bits as little-endian 64-bit words) and "blocks/bracket" (U32
 * [blocks, 4]: whether a last threshold is known, the threshold, the next bracket's centre and
 * radius; it steers only
 * how fast the selection runs, and is saved so that a resumed run repeats every step bit for bit,
 * statistics included), with the step count, the random filter's seed and the options that shape
 * the state in __metadata__. A bf16 parameter (CUDA) adds its fp32 master weights as "master/NAME".
 * Under CUDA the arrays are copied between device memory and host buffers here, so a state saved on
 * one device loads on the other. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "internal.h"
#include "io/safetensors.h"

#define STATE_FORMAT "mofo-optimizer-state"
#define STATE_VERSION "1"

static void key_name(char *out, size_t n, const char *kind, const char *name) { snprintf(out, n, "%s/%s", kind, name); }

static int64_t touched_words(const param_state *p) { return (p->numel + 63) / 64; }

/* The host copies of the state arrays being saved: the arrays themselves on the CPU, buffers filled
 * from device memory under CUDA (freed after the save). */
typedef struct host_views {
    void **bufs;
    int n, cap;
} host_views;

static const void *host_view(const mofo_optim *o, host_views *hv, const void *arr, size_t bytes, mofo_err *err) {
    if (o->opt.device == MOFO_DEVICE_CPU) return arr;
    if (hv->n == hv->cap) {
        int cap = hv->cap ? 2 * hv->cap : 16;
        void **b = realloc(hv->bufs, (size_t)cap * sizeof *b);
        if (!b) return mofo_errf(err, MOFO_ENOMEM, "out of memory saving the state"), NULL;
        hv->bufs = b;
        hv->cap = cap;
    }
    void *buf = malloc(bytes ? bytes : 1);
    if (!buf) return mofo_errf(err, MOFO_ENOMEM, "out of memory saving the state (%zu bytes)", bytes), NULL;
    hv->bufs[hv->n++] = buf;
    return mofo_cuda_copy(buf, arr, bytes, 0, err) ? NULL : buf;
}

/* Copies a loaded array into the state (device memory under CUDA). */
static int to_state(const mofo_optim *o, void *dst, const void *src, size_t bytes, mofo_err *err) {
    if (o->opt.device == MOFO_DEVICE_CPU) {
        memcpy(dst, src, bytes);
        return 0;
    }
    return mofo_cuda_copy(dst, src, bytes, 1, err);
}

/* Adds kind/NAME to the writer from arr (n entries of dtype dt in the state's memory). */
static int add_array(const mofo_optim *o, mofo_st_writer *w, host_views *hv, const char *kind, const param_state *p,
                     mofo_dtype dt, int ndim, const int64_t *shape, const void *arr, size_t bytes, mofo_err *err) {
    char name[1024];
    key_name(name, sizeof name, kind, p->name);
    const void *h = host_view(o, hv, arr, bytes, err);
    return h ? mofo_st_writer_add(w, name, dt, ndim, shape, h, err) : err ? err->code : MOFO_EDEVICE;
}

int mofo_optim_save(const mofo_optim *o, const char *path, mofo_err *err) {
    mofo_st_writer *w = mofo_st_writer_new();
    if (!w) return mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", path);
    char step[32], seed[32];
    snprintf(step, sizeof step, "%lld", (long long)o->step);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->opt.seed);
    int rc = mofo_st_writer_meta(w, "format", STATE_FORMAT, err);
    if (!rc) rc = mofo_st_writer_meta(w, "version", STATE_VERSION, err);
    if (!rc) rc = mofo_st_writer_meta(w, "rule", mofo_rule_name(o->opt.rule), err);
    if (!rc) rc = mofo_st_writer_meta(w, "filter", mofo_filter_name(o->opt.filter), err);
    if (!rc) rc = mofo_st_writer_meta(w, "step", step, err);
    if (!rc) rc = mofo_st_writer_meta(w, "seed", seed, err);
    host_views hv = {0};
    for (int i = 0; i < o->n_params && !rc; i++) {
        const param_state *p = &o->params[i];
        size_t fbytes = (size_t)p->numel * 4;
        rc = add_array(o, w, &hv, "m", p, MOFO_DT_F32, p->ndim, p->shape, p->m, fbytes, err);
        if (!rc && p->v) rc = add_array(o, w, &hv, "v", p, MOFO_DT_F32, p->ndim, p->shape, p->v, fbytes, err);
        if (!rc && p->master) rc = add_array(o, w, &hv, "master", p, MOFO_DT_F32, p->ndim, p->shape, p->master, fbytes, err);
        if (!rc && p->touched) {
            int64_t bytes = touched_words(p) * 8;
            rc = add_array(o, w, &hv, "updated", p, MOFO_DT_U8, 1, &bytes, p->touched, (size_t)bytes, err);
        }
    }
    uint32_t *bracket = NULL;
    if (!rc && o->planned && o->n_blocks > 0) {
        bracket = malloc((size_t)o->n_blocks * 4 * sizeof *bracket);
        if (!bracket) rc = mofo_errf(err, MOFO_ENOMEM, "%s: out of memory", path);
        for (int b = 0; b < o->n_blocks && !rc; b++) {
            const block *bl = &o->blocks[b];
            uint32_t row[4] = {(uint32_t)bl->have_last, bl->last_thr, bl->center, bl->radius};
            memcpy(bracket + 4 * b, row, sizeof row);
        }
        int64_t shape[2] = {o->n_blocks, 4};
        if (!rc) rc = mofo_st_writer_add(w, "blocks/bracket", MOFO_DT_U32, 2, shape, bracket, err);
    }
    if (!rc) rc = mofo_st_writer_save(w, path, err);
    mofo_st_writer_free(w);
    free(bracket);
    for (int i = 0; i < hv.n; i++) free(hv.bufs[i]);
    free(hv.bufs);
    return rc;
}

static const char *meta_or(const mofo_st_file *f, const char *key) {
    const char *v = mofo_st_meta_get(f, key);
    return v ? v : "(missing)";
}

/* The tensor kind/NAME in f with the given dtype and shape, or an error naming what differs. */
static int expect_tensor(const mofo_st_file *f, const char *kind, const char *pname, mofo_dtype dt, int ndim,
                         const int64_t *shape, const mofo_st_tensor **out, mofo_err *err) {
    char name[1024];
    key_name(name, sizeof name, kind, pname);
    const mofo_st_tensor *t = mofo_st_find(f, name);
    if (!t) return mofo_errf(err, MOFO_EFORMAT, "%s: no tensor '%s' for parameter '%s'", f->label, name, pname);
    int same = t->dtype == dt && t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
    if (!same) {
        char want[128] = "", have[128] = "";
        for (int d = 0; d < ndim; d++) snprintf(want + strlen(want), sizeof want - strlen(want), d ? ",%lld" : "%lld", (long long)shape[d]);
        for (int d = 0; d < t->ndim; d++) snprintf(have + strlen(have), sizeof have - strlen(have), d ? ",%lld" : "%lld", (long long)t->shape[d]);
        return mofo_errf(err, MOFO_EFORMAT, "%s: size mismatch: '%s' is %s [%s] but parameter '%s' needs %s [%s]",
                         f->label, name, mofo_dtype_name(t->dtype), have, pname, mofo_dtype_name(dt), want);
    }
    *out = t;
    return 0;
}

/* The file's format, rule, step and seed checked against this optimizer. */
static int check_meta(const mofo_optim *o, const mofo_st_file *f, const char *path, long long *step,
                      unsigned long long *seed_out, mofo_err *err) {
    const char *fmt = mofo_st_meta_get(f, "format"), *ver = mofo_st_meta_get(f, "version");
    const char *rule = mofo_st_meta_get(f, "rule"), *st = mofo_st_meta_get(f, "step"), *seed = mofo_st_meta_get(f, "seed");
    char *end;
    *step = st ? strtoll(st, &end, 10) : -1;
    *seed_out = seed ? strtoull(seed, &end, 10) : 0;
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0 || !ver || strcmp(ver, STATE_VERSION) != 0)
        return mofo_errf(err, MOFO_EFORMAT, "%s: not a mofo optimizer state (format '%s', version '%s')", path,
                         meta_or(f, "format"), meta_or(f, "version"));
    if (!rule || strcmp(rule, mofo_rule_name(o->opt.rule)) != 0)
        return mofo_errf(err, MOFO_EINVAL, "%s: the state is for rule '%s' but this optimizer uses '%s'", path,
                         meta_or(f, "rule"), mofo_rule_name(o->opt.rule));
    if (*step < 0 || !seed)
        return mofo_errf(err, MOFO_EFORMAT, "%s: bad step '%s' or seed '%s' in the metadata", path, meta_or(f, "step"),
                         meta_or(f, "seed"));
    return 0;
}

/* Checks that f holds parameter p's state (m, v, master, coverage bits as p has them); *count gets
 * how many tensors that is. */
static int check_param(const mofo_st_file *f, const param_state *p, size_t *count, mofo_err *err) {
    const mofo_st_tensor *t;
    int64_t bytes = touched_words(p) * 8;
    int rc = expect_tensor(f, "m", p->name, MOFO_DT_F32, p->ndim, p->shape, &t, err);
    if (!rc && p->v) rc = expect_tensor(f, "v", p->name, MOFO_DT_F32, p->ndim, p->shape, &t, err);
    if (!rc && p->master) rc = expect_tensor(f, "master", p->name, MOFO_DT_F32, p->ndim, p->shape, &t, err);
    if (!rc && p->touched) rc = expect_tensor(f, "updated", p->name, MOFO_DT_U8, 1, &bytes, &t, err);
    *count = 1 + (p->v != NULL) + (p->master != NULL) + (p->touched != NULL);
    return rc;
}

/* Copies parameter p's checked state out of f; *ever += its entries ever updated. */
static int copy_param(const mofo_optim *o, param_state *p, const mofo_st_file *f, int64_t *ever, mofo_err *err) {
    char name[1024];
    key_name(name, sizeof name, "m", p->name);
    int rc = to_state(o, p->m, mofo_st_find(f, name)->data, (size_t)p->numel * 4, err);
    if (!rc && p->v) {
        key_name(name, sizeof name, "v", p->name);
        rc = to_state(o, p->v, mofo_st_find(f, name)->data, (size_t)p->numel * 4, err);
    }
    if (!rc && p->master) {
        key_name(name, sizeof name, "master", p->name);
        rc = to_state(o, p->master, mofo_st_find(f, name)->data, (size_t)p->numel * 4, err);
    }
    if (!rc && p->touched) {
        key_name(name, sizeof name, "updated", p->name);
        const unsigned char *bits = mofo_st_find(f, name)->data;
        rc = to_state(o, p->touched, bits, (size_t)touched_words(p) * 8, err);
        for (int64_t w = 0; w < touched_words(p); w++) {
            uint64_t word;
            memcpy(&word, bits + 8 * w, 8); /* the file's data need not be 8-byte aligned */
            *ever += __builtin_popcountll(word);
        }
    }
    return rc;
}

static void set_loaded(mofo_optim *o, long long step, unsigned long long seed, int64_t ever) {
    o->step = step;
    o->opt.seed = seed;
    o->ever_updated = ever;
    o->stats.step = o->step;
    o->stats.ever_updated = ever;
    o->stats.entries = o->entries;
    o->stats.coverage = o->entries ? (double)ever / (double)o->entries : 0;
}

int mofo_optim_load(mofo_optim *o, const char *path, mofo_err *err) {
    mofo_st_file *f = NULL;
    int rc = mofo_st_open(&f, path, err);
    if (rc) return rc;
    long long step_v;
    unsigned long long seed_v;
    rc = check_meta(o, f, path, &step_v, &seed_v, err);
    /* validate everything before changing anything */
    size_t expected = 0;
    for (int i = 0; i < o->n_params && !rc; i++) {
        size_t count;
        rc = check_param(f, &o->params[i], &count, err);
        expected += count;
    }
    const mofo_st_tensor *bracket = mofo_st_find(f, "blocks/bracket");
    if (!rc && bracket) {
        expected++;
        if (!o->planned) rc = mofo_optim_plan(o, err);
        int64_t shape[2] = {o->n_blocks, 4};
        const mofo_st_tensor *t;
        if (!rc) rc = expect_tensor(f, "blocks", "bracket", MOFO_DT_U32, 2, shape, &t, err);
    }
    if (!rc && f->n_tensors != expected) {
        /* name one tensor that belongs to no registered parameter */
        for (size_t j = 0; j < f->n_tensors && !rc; j++) {
            const char *slash = strchr(f->tensors[j].name, '/');
            int known = 0;
            for (int i = 0; slash && i < o->n_params && !known; i++) known = strcmp(slash + 1, o->params[i].name) == 0;
            if (!known)
                rc = mofo_errf(err, MOFO_EINVAL, "%s: tensor '%s' belongs to no registered parameter", path,
                               f->tensors[j].name);
        }
        if (!rc)
            rc = mofo_errf(err, MOFO_EINVAL, "%s: %zu tensors where this optimizer expects %zu (coverage tracking differs?)",
                           path, f->n_tensors, expected);
    }
    int64_t ever = 0;
    for (int i = 0; i < o->n_params && !rc; i++) rc = copy_param(o, &o->params[i], f, &ever, err);
    if (!rc) {
        if (bracket) {
            const unsigned char *src = bracket->data;
            for (int b = 0; b < o->n_blocks; b++) {
                uint32_t row[4];
                memcpy(row, src + 16 * (size_t)b, 16);
                o->blocks[b].have_last = row[0] != 0;
                o->blocks[b].last_thr = row[1];
                o->blocks[b].center = row[2];
                o->blocks[b].radius = row[3];
                block_bracket(&o->blocks[b]);
            }
        }
        set_loaded(o, step_v, seed_v, ever);
    }
    mofo_st_close(f);
    return rc;
}

int mofo_optim_load_parts(mofo_optim *o, const char *const *paths, int n, mofo_err *err) {
    if (n < 1) return mofo_errf(err, MOFO_EINVAL, "no state files given");
    mofo_st_file **f = calloc((size_t)n, sizeof *f);
    int *from = calloc((size_t)(o->n_params ? o->n_params : 1), sizeof *from);
    if (!f || !from) {
        free(f), free(from);
        return mofo_errf(err, MOFO_ENOMEM, "out of memory loading the state");
    }
    long long step_v = -1;
    unsigned long long seed_v = 0;
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) {
        long long s = -1;
        unsigned long long sd = 0;
        if (!(rc = mofo_st_open(&f[k], paths[k], err)) && !(rc = check_meta(o, f[k], paths[k], &s, &sd, err)) && k &&
            (s != step_v || sd != seed_v))
            rc = mofo_errf(err, MOFO_EINVAL, "%s: step %lld and seed %llu, but %s has step %lld and seed %llu", paths[k],
                           s, sd, paths[0], step_v, seed_v);
        step_v = s, seed_v = sd;
    }
    /* each parameter's state from the first part that holds it, checked before anything changes */
    for (int i = 0; i < o->n_params && !rc; i++) {
        char name[1024];
        key_name(name, sizeof name, "m", o->params[i].name);
        from[i] = -1;
        for (int k = 0; k < n && from[i] < 0; k++)
            if (mofo_st_find(f[k], name)) from[i] = k;
        size_t count;
        if (from[i] < 0)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s and the other %d parts: no state for parameter '%s'", paths[0], n - 1,
                           o->params[i].name);
        else
            rc = check_param(f[from[i]], &o->params[i], &count, err);
    }
    int64_t ever = 0;
    for (int i = 0; i < o->n_params && !rc; i++) rc = copy_param(o, &o->params[i], f[from[i]], &ever, err);
    if (!rc) {
        for (int b = 0; b < o->n_blocks; b++) { /* the brackets, which only save time, start afresh */
            o->blocks[b].have_last = 0;
            o->blocks[b].radius = MOFO_RADIUS_START;
        }
        set_loaded(o, step_v, seed_v, ever);
    }
    for (int k = 0; k < n; k++) mofo_st_close(f[k]);
    free(f), free(from);
    return rc;
}
