/* LoRA adapters merged in memory (see adapter.h). */
#include "eval/adapter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "text/utf8.h"

static const char PREFIX[] = "base_model.model.";
static const char SUF_A[] = ".lora_A.weight";

/* scale from adapter_config.json; refuses what a plain merge cannot reproduce */
static int read_config(const char *path, double *scale, mofo_err *err) {
    char *text = NULL;
    size_t len = 0;
    int rc = mofo_read_file(path, &text, &len, err);
    if (rc) return rc;
    mofo_json_doc *doc = mofo_json_parse(text, len, err);
    if (!doc) {
        free(text);
        return mofo_err_prefix(err, "%s", path);
    }
    const mofo_json *root = mofo_json_root(doc), *v;
    int64_t r = 0;
    double alpha = NAN;
    if (root->type != MOFO_JSON_OBJECT) {
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: not a JSON object", path);
    } else if ((v = mofo_json_get(root, "peft_type")) && v->type == MOFO_JSON_STRING && strcmp(v->str, "LORA") != 0) {
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: peft_type \"%s\": only LORA adapters are supported", path, v->str);
    } else if (!(v = mofo_json_get(root, "r")) || !mofo_json_int64(v, &r) || r <= 0) {
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: field \"r\" must be a positive integer", path);
    } else if (!(v = mofo_json_get(root, "lora_alpha")) || v->type != MOFO_JSON_NUMBER) {
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: field \"lora_alpha\" must be a number", path);
    } else {
        alpha = v->number;
        static const char *flags[] = {"use_dora", "lora_bias"};
        for (int i = 0; !rc && i < 2; i++)
            if ((v = mofo_json_get(root, flags[i])) && v->type == MOFO_JSON_BOOL && v->boolean)
                rc = mofo_errf(err, MOFO_EFORMAT, "%s: %s is not supported", path, flags[i]);
        static const char *pats[] = {"rank_pattern", "alpha_pattern"};
        for (int i = 0; !rc && i < 2; i++)
            if ((v = mofo_json_get(root, pats[i])) && v->type == MOFO_JSON_OBJECT && v->count)
                rc = mofo_errf(err, MOFO_EFORMAT, "%s: a non-empty %s is not supported", path, pats[i]);
        if (!rc && (v = mofo_json_get(root, "bias")) && v->type == MOFO_JSON_STRING && strcmp(v->str, "none") != 0)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: bias \"%s\" is not supported (only \"none\")", path, v->str);
        if (!rc && (v = mofo_json_get(root, "modules_to_save")) && v->type == MOFO_JSON_ARRAY && v->count)
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: modules_to_save is not supported", path);
        int rs = (v = mofo_json_get(root, "use_rslora")) && v->type == MOFO_JSON_BOOL && v->boolean;
        *scale = rs ? alpha / sqrt((double)r) : alpha / (double)r;
    }
    mofo_json_free(doc);
    free(text);
    return rc;
}

static const mofo_param *find_param(const mofo_model *m, const char *module) {
    char name[300]; /* module is shorter than 256 bytes */
    snprintf(name, sizeof name, "%s.weight", module);
    const mofo_param *p = mofo_model_param(m, name);
    if (!p && strncmp(module, "transformer.", 12) == 0) {
        snprintf(name, sizeof name, "%s.weight", module + 12);
        p = mofo_model_param(m, name);
    }
    return p;
}

int mofo_adapter_merge(mofo_model *m, const char *dir, int *n_merged, mofo_err *err) {
    char path[4096];
    double scale = 0;
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    int rc = read_config(path, &scale, err);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    mofo_st_file *f = NULL;
    if ((rc = mofo_st_open(&f, path, err))) return rc;
    int merged = 0;
    float *A = NULL, *Bm = NULL;
    for (size_t i = 0; !rc && i < f->n_tensors; i++) {
        const mofo_st_tensor *ta = &f->tensors[i];
        size_t nl = strlen(ta->name);
        if (nl >= sizeof SUF_A && strcmp(ta->name + nl - (sizeof SUF_A - 1), SUF_A) == 0) {
            /* module name between the prefix and the suffix */
            char module[256], bname[300];
            size_t p0 = strncmp(ta->name, PREFIX, sizeof PREFIX - 1) == 0 ? sizeof PREFIX - 1 : 0;
            size_t ml = nl - (sizeof SUF_A - 1) - p0;
            if (ml >= sizeof module) {
                rc = mofo_errf(err, MOFO_EFORMAT, "%s: tensor name %s is too long", path, ta->name);
                break;
            }
            memcpy(module, ta->name + p0, ml);
            module[ml] = 0;
            snprintf(bname, sizeof bname, "%.*s.lora_B.weight", (int)(nl - (sizeof SUF_A - 1)), ta->name);
            const mofo_st_tensor *tb = mofo_st_find(f, bname);
            const mofo_param *p = find_param(m, module);
            if (!tb) {
                rc = mofo_errf(err, MOFO_EFORMAT, "%s: %s has no %s", path, ta->name, bname);
            } else if (!p || p->ndim != 2) {
                rc = mofo_errf(err, MOFO_EFORMAT, "%s: %s: the model has no matrix %s.weight", path, ta->name, module);
            } else if (ta->ndim != 2 || tb->ndim != 2 || tb->shape[1] != ta->shape[0] || tb->shape[0] != p->shape[0] ||
                       ta->shape[1] != p->shape[1]) {
                rc = mofo_errf(err, MOFO_EFORMAT,
                               "%s: %s: A [%lld, %lld] and B [%lld, %lld] do not fit %s.weight (out %lld, in %lld)", path,
                               module, (long long)ta->shape[0], (long long)(ta->ndim > 1 ? ta->shape[1] : 0),
                               (long long)tb->shape[0], (long long)(tb->ndim > 1 ? tb->shape[1] : 0), module,
                               (long long)p->shape[0], (long long)p->shape[1]);
            }
            if (rc) break;
            int64_t r = ta->shape[0], OUT = p->shape[0], IN = p->shape[1];
            free(A);
            free(Bm);
            A = malloc(sizeof(float) * (size_t)(r * IN));
            Bm = malloc(sizeof(float) * (size_t)(OUT * r));
            if (!A || !Bm) {
                rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
                break;
            }
            if ((rc = mofo_st_to_f32(f, ta, A, r * IN, err)) || (rc = mofo_st_to_f32(f, tb, Bm, OUT * r, err))) break;
            /* W (OUT, IN) += scale * B (OUT, r) A (r, IN) */
            float *W = m->params + p->offset;
#pragma omp parallel for
            for (int64_t o = 0; o < OUT; o++) {
                float *w = W + o * IN;
                for (int64_t k = 0; k < r; k++) {
                    float b = (float)(scale * Bm[o * r + k]);
                    const float *a = A + k * IN;
                    for (int64_t j = 0; j < IN; j++) w[j] += b * a[j];
                }
            }
            merged++;
        } else if (!strstr(ta->name, ".lora_B.weight")) {
            rc = mofo_errf(err, MOFO_EFORMAT, "%s: tensor %s is not a LoRA A/B matrix (not supported)", path, ta->name);
        }
    }
    free(A);
    free(Bm);
    mofo_st_close(f);
    if (!rc && merged == 0) rc = mofo_errf(err, MOFO_EFORMAT, "%s: no LoRA matrices", path);
    if (!rc && n_merged) *n_merged = merged;
    return rc;
}
