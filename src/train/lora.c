/* LoRA adapters: create, merge, gradients through dW, PEFT files. */
#define _POSIX_C_SOURCE 200809L
#include "lora.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic_file.h"
#include "model/block.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "io/strbuf.h"
#include "text/utf8.h"
#include "train/train.h"

void mofo_lora_free(mofo_lora *l) {
    if (!l) return;
    for (int i = 0; l->be && i < l->n; i++) l->be->free(l->t[i].A); /* one allocation per target */
    free(l->ad);
    if (l->be) l->be->free(l->scratch);
    for (int i = 0; i < l->n_modules; i++) free(l->modules[i]);
    free(l->modules);
    free(l->t);
    free(l);
}

static int add_module(mofo_lora *l, const char *s, size_t n) {
    for (int i = 0; i < l->n_modules; i++)
        if (strlen(l->modules[i]) == n && memcmp(l->modules[i], s, n) == 0) return 0;
    char **nm = realloc(l->modules, (size_t)(l->n_modules + 1) * sizeof *nm);
    if (!nm) return -1;
    l->modules = nm;
    if (!(nm[l->n_modules] = malloc(n + 1))) return -1;
    memcpy(nm[l->n_modules], s, n);
    nm[l->n_modules++][n] = 0;
    return 0;
}

/* a short name -> the module of that role in the model's family (a fused matrix where it has one) */
static const char *expand(const char *s, size_t n, const mofo_model_config *c) {
    static const struct {
        const char *name;
        mofo_role role, fused;
    } SHORT[] = {{"q", MOFO_ROLE_Q_W, MOFO_ROLE_QKV_W},      {"k", MOFO_ROLE_K_W, MOFO_ROLE_QKV_W},
                 {"v", MOFO_ROLE_V_W, MOFO_ROLE_QKV_W},      {"o", MOFO_ROLE_O_W, MOFO_ROLE_O_W},
                 {"gate", MOFO_ROLE_GATE_W, MOFO_ROLE_FC_W}, {"up", MOFO_ROLE_UP_W, MOFO_ROLE_FC_W},
                 {"down", MOFO_ROLE_DOWN_W, MOFO_ROLE_DOWN_W}};
    for (size_t i = 0; i < sizeof SHORT / sizeof SHORT[0]; i++)
        if (strlen(SHORT[i].name) == n && memcmp(SHORT[i].name, s, n) == 0) {
            const char *mod = mofo_family_module(c, SHORT[i].role);
            return mod ? mod : mofo_family_module(c, SHORT[i].fused);
        }
    return NULL;
}

static int suffix_match(const char *module, const char *suf) {
    size_t a = strlen(module), b = strlen(suf);
    return a == b ? strcmp(module, suf) == 0 : a > b && module[a - b - 1] == '.' && strcmp(module + a - b, suf) == 0;
}

static int alloc_target(const mofo_backend *be, mofo_lora_target *t, int r) {
    size_t n = (size_t)r * (size_t)(t->C + t->OC);
    float *buf = be->alloc(2 * n);
    if (!buf) return -1;
    t->A = buf;                   /* (r, C) */
    t->B = buf + (size_t)r * t->C; /* (OC, r) */
    t->gA = buf + n;
    t->gB = t->gA + (size_t)r * t->C;
    return 0;
}

/* the targets: 2-dim weights whose module matches one of mods */
static int find_targets(mofo_lora *l, const mofo_model *m, mofo_err *err) {
    l->be = m->be;
    for (int i = 0; i < m->n_p; i++) {
        const mofo_param *p = &m->p[i];
        size_t len = strlen(p->name);
        if (p->ndim != 2 || len < 8 || strcmp(p->name + len - 7, ".weight") != 0) continue;
        char module[96];
        snprintf(module, sizeof module, "%.*s", (int)(len - 7), p->name);
        int hit = 0;
        for (int j = 0; j < l->n_modules && !hit; j++) hit = suffix_match(module, l->modules[j]);
        if (!hit) continue;
        mofo_param_kind kind = mofo_model_param_kind(m, i);
        if (kind == MOFO_KIND_EMBED || kind == MOFO_KIND_HEAD)
            return mofo_errf(err, MOFO_EINVAL, "LoRA on '%s': only linear layers are supported", p->name);
        mofo_lora_target *nt = realloc(l->t, (size_t)(l->n + 1) * sizeof *nt);
        if (!nt) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
        l->t = nt;
        mofo_lora_target *t = &l->t[l->n];
        memset(t, 0, sizeof *t);
        t->param = i, t->OC = p->shape[0], t->C = p->shape[1];
        snprintf(t->a_name, sizeof t->a_name, "base_model.model.%s.lora_A.weight", module);
        snprintf(t->b_name, sizeof t->b_name, "base_model.model.%s.lora_B.weight", module);
        if (alloc_target(l->be, t, l->r))
            return mofo_errf(err, MOFO_ENOMEM, "out of %s memory for the adapter of '%s' (%.1f MB)", l->be->name, p->name,
                             2 * 4.0 * l->r * (double)(t->C + t->OC) / 1e6);
        l->n++;
    }
    return 0;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int mofo_lora_create(mofo_lora **out, const mofo_model *m, const char *targets, int r, double alpha, uint64_t seed,
                     mofo_err *err) {
    *out = NULL;
    if (r < 1) return mofo_errf(err, MOFO_EINVAL, "LoRA rank %d: must be >= 1", r);
    if (!(alpha > 0)) return mofo_errf(err, MOFO_EINVAL, "LoRA alpha %g: must be > 0", alpha);
    mofo_lora *l = calloc(1, sizeof *l);
    if (!l) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    l->r = r, l->alpha = alpha, l->scale = alpha / r;
    int rc = 0;
    for (const char *s = targets; *s && rc == 0;) {
        size_t n = strcspn(s, ", ");
        if (n) {
            const char *e = expand(s, n, &m->cfg);
            if (add_module(l, e ? e : s, e ? strlen(e) : n)) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        }
        s += n;
        while (*s == ',' || *s == ' ') s++;
    }
    if (rc == 0) rc = find_targets(l, m, err);
    if (rc == 0 && l->n == 0) rc = mofo_errf(err, MOFO_EINVAL, "LoRA targets '%s' match no linear layer of the model", targets);
    uint64_t st = seed;
    float *host = NULL; /* one target's A, made on the host */
    for (int i = 0; i < l->n && rc == 0; i++) {
        mofo_lora_target *t = &l->t[i];
        float bound = (float)(1.0 / sqrt((double)t->C));
        float *h = realloc(host, (size_t)r * (size_t)t->C * sizeof *h);
        if (!h) {
            rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
            break;
        }
        host = h;
        for (int64_t k = 0; k < (int64_t)r * t->C; k++)
            host[k] = bound * (float)(2.0 * ((double)(splitmix64(&st) >> 11) * 0x1.0p-53) - 1.0);
        l->be->upload(t->A, host, (size_t)r * (size_t)t->C);
    }
    free(host);
    if (rc) {
        mofo_lora_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

static int read_config(mofo_lora *l, const char *dir, mofo_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    char *text = NULL;
    size_t len = 0;
    int rc = mofo_read_file(path, &text, &len, err);
    if (rc) return rc;
    mofo_json_doc *doc = mofo_json_parse(text, len, err);
    if (!doc) {
        free(text);
        return mofo_err_prefix(err, "%s", path);
    }
    const mofo_json *root = mofo_json_root(doc), *pt = mofo_json_get(root, "peft_type"),
                    *a = mofo_json_get(root, "lora_alpha"), *rs = mofo_json_get(root, "use_rslora"),
                    *dora = mofo_json_get(root, "use_dora"), *bias = mofo_json_get(root, "bias"),
                    *tm = mofo_json_get(root, "target_modules");
    int64_t r;
    if (pt && (pt->type != MOFO_JSON_STRING || strcmp(pt->str, "LORA") != 0))
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: peft_type is not LORA", path);
    else if (!mofo_json_int64(mofo_json_get(root, "r"), &r) || r < 1 || r > 1 << 20)
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: field \"r\" missing or not a positive integer", path);
    else if (!a || a->type != MOFO_JSON_NUMBER || !(a->number > 0))
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: field \"lora_alpha\" missing or not positive", path);
    else if (dora && dora->type == MOFO_JSON_BOOL && dora->boolean)
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: DoRA (use_dora) is not supported", path);
    else if (bias && bias->type == MOFO_JSON_STRING && strcmp(bias->str, "none") != 0)
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: bias \"%s\" is not supported (only \"none\")", path, bias->str);
    const mofo_json *v;
    if (!rc && (v = mofo_json_get(root, "lora_bias")) && v->type == MOFO_JSON_BOOL && v->boolean)
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: lora_bias is not supported", path);
    static const char *patterns[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; !rc && i < 2; i++)
        if ((v = mofo_json_get(root, patterns[i])) && v->type == MOFO_JSON_OBJECT && v->count)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: a non-empty %s is not supported", path, patterns[i]);
    if (!rc && (v = mofo_json_get(root, "modules_to_save")) && v->type == MOFO_JSON_ARRAY && v->count)
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: modules_to_save is not supported", path);
    if (rc == 0) {
        l->r = (int)r, l->alpha = a->number;
        l->rslora = rs && rs->type == MOFO_JSON_BOOL && rs->boolean;
        l->scale = l->rslora ? l->alpha / sqrt((double)r) : l->alpha / (double)r;
        for (const mofo_json *e = tm && tm->type == MOFO_JSON_ARRAY ? tm->child : NULL; e && rc == 0; e = e->next)
            if (e->type == MOFO_JSON_STRING && add_module(l, e->str, e->len)) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    }
    mofo_json_free(doc);
    free(text);
    return rc;
}

int mofo_lora_load_weights(mofo_lora *l, const char *dir, mofo_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    mofo_st_file *f = NULL;
    int rc = mofo_st_open(&f, path, err);
    float *host = NULL; /* one target's A then B, read on the host */
    for (int i = 0; i < l->n && rc == 0; i++) {
        mofo_lora_target *t = &l->t[i];
        size_t na = (size_t)l->r * (size_t)t->C, n = na + (size_t)l->r * (size_t)t->OC;
        float *h = realloc(host, n * sizeof *h);
        if (!h) {
            rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
            break;
        }
        host = h;
        const mofo_st_tensor *a = mofo_st_find(f, t->a_name), *b = mofo_st_find(f, t->b_name);
        if (!a || !b)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' missing", path, !a ? t->a_name : t->b_name);
        else if (a->ndim != 2 || a->shape[0] != l->r || a->shape[1] != t->C)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' is not [%d, %lld]", path, t->a_name, l->r, (long long)t->C);
        else if (b->ndim != 2 || b->shape[0] != t->OC || b->shape[1] != l->r)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' is not [%lld, %d]", path, t->b_name, (long long)t->OC, l->r);
        if (rc == 0) rc = mofo_st_to_f32(f, a, host, a->numel, err);
        if (rc == 0) rc = mofo_st_to_f32(f, b, host + na, b->numel, err);
        if (rc == 0) l->be->upload(t->A, host, n); /* B follows A in the target's buffer */
    }
    free(host);
    /* every lora tensor of the file must belong to a target */
    for (size_t k = 0; f && rc == 0 && k < f->n_tensors; k++) {
        int known = 0;
        for (int i = 0; i < l->n && !known; i++)
            known = strcmp(f->tensors[k].name, l->t[i].a_name) == 0 || strcmp(f->tensors[k].name, l->t[i].b_name) == 0;
        if (!known)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: tensor '%s' belongs to no linear layer of the model", path,
                           f->tensors[k].name);
    }
    mofo_st_close(f);
    return rc;
}

int mofo_lora_load(mofo_lora **out, const mofo_model *m, const char *dir, mofo_err *err) {
    *out = NULL;
    mofo_lora *l = calloc(1, sizeof *l);
    if (!l) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    int rc = read_config(l, dir, err);
    if (rc == 0) rc = find_targets(l, m, err);
    if (rc == 0) rc = mofo_lora_load_weights(l, dir, err);
    if (rc) {
        mofo_lora_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int mofo_lora_save(const mofo_lora *l, const mofo_model *m, const char *dir, const char *base_name, mofo_err *err) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return mofo_errf(err, MOFO_EIO, "%s: cannot create the directory: %s", dir, strerror(errno));
    char path[4200];
    mofo_st_writer *w = mofo_st_writer_new();
    float **host = calloc((size_t)l->n + 1, sizeof *host); /* each target's A then B, on the host */
    int rc = w && host ? 0 : mofo_errf(err, MOFO_ENOMEM, "out of memory");
    for (int i = 0; i < l->n && rc == 0; i++) {
        const mofo_lora_target *t = &l->t[i];
        int64_t sa[2] = {l->r, t->C}, sb[2] = {t->OC, l->r};
        size_t na = (size_t)l->r * (size_t)t->C, n = na + (size_t)l->r * (size_t)t->OC;
        if (!(host[i] = malloc(n * sizeof **host))) {
            rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
            break;
        }
        l->be->download(host[i], t->A, n);
        rc = mofo_st_writer_add(w, t->a_name, MOFO_DT_F32, 2, sa, host[i], err);
        if (rc == 0) rc = mofo_st_writer_add(w, t->b_name, MOFO_DT_F32, 2, sb, host[i] + na, err);
    }
    if (rc == 0) rc = mofo_backend_check(l->be, err);
    if (rc == 0) rc = mofo_st_writer_meta(w, "format", "pt", err);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    if (rc == 0) rc = mofo_st_writer_save(w, path, err);
    mofo_st_writer_free(w);
    for (int i = 0; host && i < l->n; i++) free(host[i]);
    free(host);
    if (rc) return rc;
    mofo_strbuf sb = {0};
    mofo_sb_puts(&sb, "{\n  \"base_model_name_or_path\": ");
    mofo_sb_json_string(&sb, base_name, strlen(base_name));
    mofo_sb_printf(&sb,
                   ",\n  \"bias\": \"none\",\n  \"fan_in_fan_out\": %s,\n  \"inference_mode\": true,\n"
                   "  \"init_lora_weights\": true,\n  \"lora_alpha\": %.17g,\n  \"lora_dropout\": 0.0,\n"
                   "  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n  \"r\": %d,\n  \"target_modules\": [",
                   m->cfg.names == MOFO_NAMES_GPT2 ? "true" : "false", l->alpha, l->r);
    for (int i = 0; i < l->n_modules; i++) {
        mofo_sb_puts(&sb, i ? ", " : "");
        mofo_sb_json_string(&sb, l->modules[i], strlen(l->modules[i]));
    }
    mofo_sb_printf(&sb, "],\n  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n  \"use_rslora\": %s\n}\n",
                   l->rslora ? "true" : "false");
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    if (sb.failed) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
    if (rc == 0) rc = mofo_write_file_atomic(path, sb.data, sb.len, err);
    mofo_sb_free(&sb);
    return rc;
}

int mofo_lora_attach(mofo_lora *l, mofo_model *m, mofo_err *err) {
    free(l->ad);
    l->be->free(l->scratch);
    l->ad = calloc((size_t)l->n, sizeof *l->ad);
    int64_t most = 0;
    for (int i = 0; i < l->n; i++) most = l->t[i].OC * l->t[i].C > most ? l->t[i].OC * l->t[i].C : most;
    l->scratch = l->be->alloc((size_t)most);
    if (!l->ad || !l->scratch) return mofo_errf(err, MOFO_ENOMEM, "out of memory for %d adapters", l->n);
    for (int i = 0; i < l->n; i++) {
        mofo_lora_target *t = &l->t[i];
        mofo_adapter *a = &l->ad[i];
        if (mofo_model_param_site(m, t->param, &a->layer, &a->site, &a->row0))
            return mofo_errf(err, MOFO_EINVAL, "LoRA on '%s': not a matrix of a block", m->p[t->param].name);
        a->OC = (int)t->OC, a->C = (int)t->C, a->r = l->r, a->scale = (float)l->scale;
        a->A = t->A, a->B = t->B, a->gA = t->gA, a->gB = t->gB;
    }
    return mofo_model_set_adapters(m, l->ad, l->n, 1, err);
}

int mofo_lora_register(const mofo_lora *l, mofo_optim *opt, const int *owner, int rank, mofo_err *err) {
    for (int i = 0; i < l->n; i++) {
        const mofo_lora_target *lt = &l->t[i];
        if (owner && owner[i] != rank) continue;
        int64_t sa[2] = {l->r, lt->C}, sb[2] = {lt->OC, l->r};
        int r = mofo_optim_add_param(opt, lt->a_name, lt->A, lt->gA, 2, sa, MOFO_GROUP_AUTO, err);
        if (r >= 0) r = mofo_optim_add_param(opt, lt->b_name, lt->B, lt->gB, 2, sb, MOFO_GROUP_AUTO, err);
        if (r < 0) return r;
    }
    return 0;
}

void mofo_lora_zero_grads(mofo_lora *l) {
    for (int i = 0; i < l->n; i++) {
        l->be->fill(l->t[i].gA, 0.0f, (size_t)l->r * (size_t)l->t[i].C);
        l->be->fill(l->t[i].gB, 0.0f, (size_t)l->r * (size_t)l->t[i].OC);
    }
}

/* W (OC, C) = W0 + s B A */
static void merge_target(const mofo_lora *l, const mofo_lora_target *t, const float *W0, float *W) {
    if (W != W0) l->be->copy(W, W0, (size_t)(t->OC * t->C));
    l->be->gemm(MOFO_PRECISION_FP32, false, false, (int)t->OC, (int)t->C, l->r, (float)l->scale, t->B, l->r, t->A, (int)t->C, 1.0f, W,
               (int)t->C);
}

void mofo_lora_merge(const mofo_lora *l, const mofo_model *m, const float *base, float *out) {
    for (int i = 0; i < l->n; i++) {
        size_t off = m->p[l->t[i].param].offset;
        merge_target(l, &l->t[i], base + off, out + off);
    }
}

void mofo_lora_diff(const mofo_lora *l, const mofo_model *m, struct mofo_diff *d) {
    int64_t rest = (int64_t)m->n_floats;
    for (int i = 0; i < l->n; i++) {
        const mofo_lora_target *t = &l->t[i];
        const float *W0 = m->params + m->p[t->param].offset;
        merge_target(l, t, W0, l->scratch);
        mofo_diff_accum_on(l->be, d, W0, l->scratch, t->OC * t->C);
        rest -= t->OC * t->C;
    }
    /* the other tensors are frozen: unchanged */
    d->numel += rest;
}
