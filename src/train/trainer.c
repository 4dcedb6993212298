/* The fine-tuning loop: data order, micro-batches, gradient accumulation, the methods' gradients,
 * clipping, the optimizer step, metrics, evaluation, checkpoints and resume. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/json.h"
#include "text/utf8.h"
#include "train.h"

#include "dist/comm.h"

/* gradient entries per all-reduce (64 MB): the bucket of one message */
#define BUCKET ((size_t)1 << 24)

size_t mofo_train_opts_size(void) { return sizeof(mofo_train_opts); }
int64_t mofo_trainer_total_steps(const mofo_trainer *t) { return t->total_steps; }
int64_t mofo_trainer_steps_done(const mofo_trainer *t) { return t->step; }
mofo_model *mofo_trainer_model(mofo_trainer *t) { return t->m; }

void mofo_train_opts_init(mofo_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->method = MOFO_METHOD_MOFO;
    o->rule = MOFO_RULE_ADAMW;
    o->alpha = 0.15;
    o->reg = 0;
    o->lr = 1e-5;
    o->sched = MOFO_SCHED_LINEAR;
    o->warmup = 0;
    o->epochs = 1;
    o->batch = 8;
    o->grad_accum = 1;
    o->seq_len = 1024;
    o->clip = 1.0;
    o->weight_decay = 0;
    o->beta1 = o->beta2 = o->eps = -1;
    o->seed = 42;
    o->shuffle = 1;
    o->tpl = MOFO_TPL_TULU;
    o->lora_rank = 8;
    o->lora_alpha = 16;
    o->lora_targets = "q,k,v,o,gate,up,down";
    o->init_std = 0.02;
}

/* the folder whose tokenizer files the run uses and copies */
static const char *tok_dir(const mofo_train_opts *o) { return o->tokenizer_dir ? o->tokenizer_dir : o->model_dir; }

static int is_lora(const mofo_train_opts *o) { return mofo_method_def_of(o->method)->adapters; }

static int check_opts(const mofo_train_opts *o, mofo_err *err) {
    if (!(o->lr > 0) || !isfinite(o->lr)) return mofo_errf(err, MOFO_EINVAL, "lr %g: the learning rate must be > 0", o->lr);
    if (o->batch < 1) return mofo_errf(err, MOFO_EINVAL, "batch %d: must be >= 1", o->batch);
    if (o->grad_accum < 1) return mofo_errf(err, MOFO_EINVAL, "grad_accum %d: must be >= 1", o->grad_accum);
    if (o->seq_len < 2) return mofo_errf(err, MOFO_EINVAL, "seq_len %d: must be >= 2", o->seq_len);
    if (o->steps < 0 || (o->steps == 0 && o->epochs < 1))
        return mofo_errf(err, MOFO_EINVAL, "steps or epochs must be >= 1");
    if (!(o->clip >= 0)) return mofo_errf(err, MOFO_EINVAL, "clip %g: must be >= 0 (0 disables)", o->clip);
    if (!(o->reg >= 0)) return mofo_errf(err, MOFO_EINVAL, "reg %g: must be >= 0", o->reg);
    if ((unsigned)o->method >= MOFO_N_METHODS) return mofo_errf(err, MOFO_EINVAL, "method %d: not a mofo_method", (int)o->method);
    if ((unsigned)o->precision > MOFO_PRECISION_BF16)
        return mofo_errf(err, MOFO_EINVAL, "precision %d: not a mofo_precision", (int)o->precision);
    if (mofo_method_def_of(o->method)->needs_reg && !(o->reg > 0))
        return mofo_errf(err, MOFO_EINVAL, "method %s needs reg > 0", mofo_method_name(o->method));
    if (o->scratch && is_lora(o)) return mofo_errf(err, MOFO_EINVAL, "a model made from scratch trains without LoRA");
    if (o->scratch && !o->tokenizer_dir) return mofo_errf(err, MOFO_EINVAL, "a model made from scratch needs a tokenizer");
    if (o->scratch && !(o->init_std >= 0 && isfinite(o->init_std)))
        return mofo_errf(err, MOFO_EINVAL, "init_std %g: must be >= 0", o->init_std);
    if (!(o->val_split >= 0 && o->val_split < 1))
        return mofo_errf(err, MOFO_EINVAL, "val_split %g: must be in [0, 1)", o->val_split);
    return 0;
}

/* the options that shape the trajectory, as one line: a checkpoint resumes only under the same */
static void signature(const mofo_trainer *t, mofo_strbuf *sb) {
    const mofo_train_opts *o = &t->o;
    mofo_sb_printf(sb,
                   "method=%s rule=%s alpha=%.17g reg=%.17g lr=%.17g sched=%s warmup=%lld steps=%lld batch=%d "
                   "accum=%d seq_len=%d T=%d clip=%.17g wd=%.17g b1=%.17g b2=%.17g eps=%.17g seed=%llu shuffle=%d "
                   "template=%s val_split=%.17g pack=%d n_train=%zu n_val=%zu lora=%d/%.17g/%s",
                   mofo_method_name(o->method), mofo_rule_name(o->rule), o->alpha, o->reg, o->lr,
                   mofo_sched_name(o->sched), (long long)t->warmup_steps, (long long)t->total_steps, o->batch,
                   o->grad_accum, o->seq_len, t->T, o->clip, o->weight_decay, o->beta1, o->beta2, o->eps,
                   (unsigned long long)o->seed, o->shuffle, mofo_chat_template_name(o->tpl), o->val_split, o->pack, t->train.n,
                   t->val.n, is_lora(o) ? o->lora_rank : 0, is_lora(o) ? o->lora_alpha : 0,
                   is_lora(o) && o->lora_targets ? o->lora_targets : "-");
    if (o->scratch) mofo_sb_printf(sb, " init=%llu/%.17g", (unsigned long long)o->init_seed, o->init_std);
    if (o->precision != MOFO_PRECISION_FP32) mofo_sb_printf(sb, " precision=%s", mofo_precision_name(o->precision));
}

static int build_optimizer(mofo_trainer *t, mofo_err *err) {
    const mofo_train_opts *o = &t->o;
    mofo_options mo;
    mofo_options_init(&mo, o->rule);
    mo.alpha = o->alpha;
    mo.weight_decay = o->weight_decay;
    if (o->beta1 >= 0) mo.beta1 = o->beta1;
    if (o->beta2 >= 0) mo.beta2 = o->beta2;
    if (o->eps >= 0) mo.eps = o->eps;
    mo.threads = o->threads;
    mo.device = mofo_model_device(t->m);
    if (!mofo_method_def_of(o->method)->filtered) mo.filter = MOFO_FILTER_NONE;
    int rc = mofo_options_check(&mo, err);
    if (rc) return rc;
    if (!(t->opt = mofo_optim_create(&mo, err))) return err ? err->code : MOFO_EINVAL;
    if ((rc = mofo_model_alloc_grads(t->m, err))) return rc;
    for (int i = 0; i < t->m->n_p; i++) {
        const mofo_param *p = &t->m->p[i];
        t->total_entries += p->numel;
        if (!t->trainable[i]) continue;
        t->trainable_entries += p->numel;
        if (t->owner_p && t->owner_p[i] != t->rank) continue; /* another process's share */
        int r = mofo_optim_add_param(t->opt, p->name, t->m->params + p->offset, t->m->grads + p->offset, p->ndim,
                                     p->shape, MOFO_GROUP_AUTO, err);
        if (r < 0) return r;
    }
    if (!t->lora) return 0;
    for (int i = 0; i < t->lora->n; i++) t->trainable_entries += (int64_t)t->lora->r * (t->lora->t[i].C + t->lora->t[i].OC);
    return mofo_lora_register(t->lora, t->opt, t->owner_l, t->rank, err);
}

/* positions trained in example e once cut to T tokens (labels[0] is never a target) */
static int64_t trained_in(const mofo_example *e, int T) {
    int64_t n = 0;
    for (int32_t i = 1; i < e->len && i < T; i++) n += e->labels[i] != MOFO_IGNORE_INDEX;
    return n;
}

/* --pack: t->train becomes rows of seq_len tokens cut from the training examples (kept in t->src) in
 * an order drawn from (seed, epoch), so that each epoch an example has other neighbours in its row
 * and nothing but its own text predicts it; the validation examples stay whole. The row count is the
 * same every epoch (the same tokens). */
static int pack_epoch(mofo_trainer *t, int64_t epoch, mofo_err *err) {
    mofo_dataset view = t->src, packed = {0};
    view.ex = malloc(t->src.n * sizeof *view.ex + 1); /* a shallow copy to shuffle: the ids stay src's */
    if (!view.ex) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    memcpy(view.ex, t->src.ex, t->src.n * sizeof *view.ex);
    view.cap = view.n;
    if (t->o.shuffle) mofo_dataset_shuffle(&view, (t->o.seed ^ 0x7061636BULL) + 0x9E3779B97F4A7C15ULL * (uint64_t)epoch);
    int rc = mofo_dataset_pack(&view, t->o.seq_len, &packed, err);
    free(view.ex);
    if (rc) {
        mofo_dataset_free(&packed);
        return rc;
    }
    mofo_dataset_free(&t->train);
    t->train = packed;
    t->packed_epoch = epoch;
    return 0;
}

static int load_data(mofo_trainer *t, mofo_err *err) {
    const mofo_train_opts *o = &t->o;
    /* packed examples are cut by the rows, not truncated */
    mofo_data_opts dopt = {.format = MOFO_FMT_AUTO, .tpl = o->tpl, .chat = t->chat, .max_len = o->pack ? 0 : o->seq_len, .skip_bad = 0};
    int rc = mofo_dataset_load(&t->train, o->data_path, t->tok, &dopt, err);
    if (rc) return rc;
    int64_t trained = 0;
    int longest = 0;
    for (size_t i = 0; i < t->train.n; i++) {
        const mofo_example *e = &t->train.ex[i];
        trained += trained_in(e, o->pack ? INT32_MAX : o->seq_len);
        if (e->len > longest) longest = e->len;
        for (int32_t k = 0; k < e->len; k++)
            if (e->ids[k] < 0 || e->ids[k] >= t->m->cfg.V)
                return mofo_errf(err, MOFO_EINVAL, "%s:%d: token id %d is outside the model's vocabulary of %d",
                                 o->data_path, e->line, e->ids[k], t->m->cfg.V);
    }
    if (trained == 0)
        return mofo_errf(err, MOFO_EINVAL,
                         "%s: no trainable token (%zu examples; every label is -100 or cut off by --seq-len %d)",
                         o->data_path, t->train.n, o->seq_len);
    if (o->val_split > 0) {
        if (o->shuffle) {
            rc = mofo_dataset_split(&t->train, &t->val, o->val_split, o->seed, err);
        } else { /* file order: the last examples are held out */
            size_t k = (size_t)(o->val_split * (double)t->train.n);
            if (k == 0 && t->train.n >= 2) k = 1;
            if (k > 0) {
                if (!(t->val.ex = malloc(k * sizeof *t->val.ex))) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
                memcpy(t->val.ex, t->train.ex + t->train.n - k, k * sizeof *t->val.ex);
                t->val.n = t->val.cap = k;
                t->train.n -= k;
            }
        }
        if (rc) return rc;
        if (t->train.n == 0) return mofo_errf(err, MOFO_EINVAL, "%s: nothing left to train on after --val-split", o->data_path);
    }
    if (o->pack) {
        t->src = t->train;
        memset(&t->train, 0, sizeof t->train);
        if ((rc = pack_epoch(t, 0, err))) return rc;
        for (size_t i = 0; i < t->train.n; i++)
            if (t->train.ex[i].len > longest) longest = t->train.ex[i].len;
    }
    t->T = longest < o->seq_len ? longest : o->seq_len;
    if (t->m->cfg.pos == MOFO_POS_LEARNED && t->T > t->m->cfg.max_T) t->T = t->m->cfg.max_T;
    if (t->T < 2) t->T = 2;
    t->B = o->batch;
    t->n_batches = (int64_t)((t->train.n + (size_t)t->B - 1) / (size_t)t->B);
    return 0;
}

int mofo_trainer_create(mofo_trainer **out, const mofo_train_opts *o, mofo_err *err) {
    return mofo_trainer_create_in(out, o, NULL, err);
}

/* The owners of the trainable units (model tensors, then adapters): contiguous runs balanced by
 * size, a unit going to the rank its middle entry falls to. */
static int assign_owners(mofo_trainer *t, mofo_err *err) {
    int n_l = t->lora ? t->lora->n : 0;
    t->owner_p = malloc((size_t)t->m->n_p * sizeof *t->owner_p);
    t->owner_l = malloc((size_t)(n_l ? n_l : 1) * sizeof *t->owner_l);
    if (!t->owner_p || !t->owner_l) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    double total = 0, at = 0;
    for (int i = 0; i < t->m->n_p; i++) total += t->trainable[i] ? (double)t->m->p[i].numel : 0;
    for (int i = 0; i < n_l; i++) total += (double)t->lora->r * (double)(t->lora->t[i].C + t->lora->t[i].OC);
    for (int u = 0; u < t->m->n_p + n_l; u++) {
        int is_p = u < t->m->n_p;
        if (is_p && !t->trainable[u]) {
            t->owner_p[u] = -1;
            continue;
        }
        const mofo_lora_target *lt = is_p ? NULL : &t->lora->t[u - t->m->n_p];
        double n = is_p ? (double)t->m->p[u].numel : (double)t->lora->r * (double)(lt->C + lt->OC);
        int r = (int)((at + n / 2) * t->world / total);
        if (r >= t->world) r = t->world - 1;
        *(is_p ? &t->owner_p[u] : &t->owner_l[u - t->m->n_p]) = r;
        at += n;
    }
    return 0;
}

int mofo_trainer_create_in(mofo_trainer **out, const mofo_train_opts *o, mofo_comm *comm, mofo_err *err) {
    *out = NULL;
    int rc = check_opts(o, err);
    if (rc) return rc;
    int world = mofo_comm_size(comm), rank = mofo_comm_rank(comm);
    if (o->batch < world)
        return mofo_errf(err, MOFO_EINVAL, "batch %d: must be at least the %d processes (each takes rows of it)",
                         o->batch, world);
    if (o->device != MOFO_DEVICE_CPU && world > 1)
        return mofo_errf(err, MOFO_EINVAL, "device %s: one process only (several processes train on the CPU)",
                         mofo_device_name(o->device));
    mofo_trainer *t = calloc(1, sizeof *t);
    if (!t) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
    t->o = *o;
    t->perm_epoch = -1;
    t->comm = comm, t->world = world, t->rank = rank;
    t->rows = o->batch / world + (rank < o->batch % world);
    t->row0 = rank * (o->batch / world) + (rank < o->batch % world ? rank : o->batch % world);
    if (o->scratch) {
        if ((rc = mofo_tokenizer_load_dir(&t->tok, o->tokenizer_dir, err))) goto fail;
        if ((rc = mofo_model_create_hf_init(&t->m, o->scratch, o->init_seed, (float)o->init_std, err))) goto fail;
    } else {
        if ((rc = mofo_model_load_to(&t->m, o->model_dir, o->device, err))) goto fail;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/tokenizer.json", tok_dir(o));
        if (stat(path, &st) == 0 && (rc = mofo_tokenizer_load_dir(&t->tok, tok_dir(o), err))) goto fail;
    }
    /* a loaded model is already there; one made from scratch is made on the host */
    if (mofo_model_device(t->m) != o->device && (rc = mofo_model_to_device(t->m, o->device, err))) goto fail;
    if ((rc = mofo_model_set_precision(t->m, o->precision, err))) goto fail;
    t->pad_id = 0;
    if (t->tok) {
        int32_t p = mofo_tokenizer_pad(t->tok), e = mofo_tokenizer_eos(t->tok);
        t->pad_id = p >= 0 ? p : e >= 0 ? e : 0;
        if (t->pad_id >= t->m->cfg.V) t->pad_id = 0;
    }
    if (o->tpl == MOFO_TPL_MODEL) {
        if ((rc = mofo_chat_load_dir(&t->chat, tok_dir(o), t->tok, err))) goto fail;
        if (!t->chat) {
            rc = mofo_errf(err, MOFO_EINVAL, "%s has no chat template (tokenizer_config.json \"chat_template\" or chat_template.jinja)",
                           tok_dir(o));
            goto fail;
        }
    }
    if ((rc = load_data(t, err))) goto fail;
    t->total_steps = o->steps > 0 ? o->steps : (o->epochs * t->n_batches + o->grad_accum - 1) / o->grad_accum;
    if ((rc = mofo_warmup_steps(o->warmup, t->total_steps, &t->warmup_steps, err))) goto fail;
    /* the pre-trained weights, beside the model (LoRA never changes the base: its distances come from
     * the adapters, mofo_lora_diff) */
    t->theta0 = is_lora(o) ? NULL : t->m->be->alloc(t->m->n_floats);
    t->trainable = malloc((size_t)t->m->n_p);
    t->perm = malloc(t->train.n * sizeof *t->perm);
    t->ids = malloc(sizeof(int) * (size_t)t->B * (size_t)t->T);
    t->tg = malloc(sizeof(int) * (size_t)t->B * (size_t)t->T);
    if (!t->theta0 && !is_lora(o)) {
        rc = mofo_errf(err, MOFO_ENOMEM, "out of %s memory for the copy of the pre-trained weights (%.1f MB)",
                       t->m->be->name, 4.0 * (double)t->m->n_floats / 1e6);
        goto fail;
    }
    if (!t->trainable || !t->perm || !t->ids || !t->tg) {
        rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        goto fail;
    }
    if (t->theta0) t->m->be->copy(t->theta0, t->m->params, t->m->n_floats);
    const mofo_method_def *method = mofo_method_def_of(o->method);
    for (int i = 0; i < t->m->n_p; i++)
        t->trainable[i] = !method->adapters && (!method->trains || method->trains(&t->m->p[i]));
    if (is_lora(o)) {
        if ((rc = mofo_lora_create(&t->lora, t->m, o->lora_targets ? o->lora_targets : "", o->lora_rank, o->lora_alpha,
                                   o->seed, err)) ||
            (rc = mofo_lora_attach(t->lora, t->m, err)))
            goto fail;
    }
    if (!(t->spans = malloc((size_t)(t->m->n_p + (t->lora ? 2 * t->lora->n : 0)) * sizeof *t->spans)) ||
        (world > 1 && !(t->bucket = malloc(BUCKET * sizeof *t->bucket)))) {
        rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = assign_owners(t, err))) goto fail;
    if ((rc = build_optimizer(t, err))) goto fail;
    *out = t;
    return 0;
fail:
    mofo_trainer_free(t);
    return rc;
}

void mofo_trainer_free(mofo_trainer *t) {
    if (!t) return;
    mofo_optim_destroy(t->opt);
    mofo_lora_free(t->lora);
    if (t->theta0) t->m->be->free(t->theta0); /* the model's backend's */
    mofo_model_free(t->m);
    mofo_tokenizer_free(t->tok);
    mofo_chat_free(t->chat);
    /* val's examples were moved out of train's array (train.n shrank), so each is freed once */
    mofo_dataset_free(&t->train);
    mofo_dataset_free(&t->src);
    mofo_dataset_free(&t->val);
    free(t->trainable);
    free(t->spans);
    free(t->bucket);
    free(t->owner_p);
    free(t->owner_l);
    free(t->perm);
    free(t->ids);
    free(t->tg);
    free(t);
}

/* rows [first, first+B) of the order (missing rows: padding) -> t->ids, t->tg (next-token targets) */
static int64_t fill_rows(mofo_trainer *t, const mofo_dataset *ds, const size_t *order, size_t first) {
    int B = t->B, T = t->T;
    int64_t trained = 0;
    for (int b = 0; b < B; b++) {
        int *ids = t->ids + (size_t)b * T, *tg = t->tg + (size_t)b * T; /* (T) */
        const mofo_example *e = first + (size_t)b < ds->n ? &ds->ex[order ? order[first + b] : first + b] : NULL;
        int len = e ? (e->len < T ? e->len : T) : 0;
        for (int i = 0; i < T; i++) {
            ids[i] = i < len ? e->ids[i] : t->pad_id;
            tg[i] = i + 1 < len ? e->labels[i + 1] : MOFO_IGNORE_INDEX;
            trained += tg[i] != MOFO_IGNORE_INDEX;
        }
    }
    return trained;
}

static int epoch_order(mofo_trainer *t, int64_t epoch, mofo_err *err) {
    if (t->perm_epoch == epoch) return 0;
    int rc;
    if (t->o.pack && t->packed_epoch != epoch && (rc = pack_epoch(t, epoch, err))) return rc;
    size_t n = t->train.n;
    for (size_t i = 0; i < n; i++) t->perm[i] = i;
    if (t->o.shuffle) { /* seeded Fisher-Yates over indices, through the data set's own shuffle */
        mofo_example *view = malloc(n * sizeof *view);
        if (!view) return mofo_errf(err, MOFO_ENOMEM, "out of memory");
        {
            for (size_t i = 0; i < n; i++) view[i].line = (int32_t)i, view[i].ids = NULL, view[i].len = 0;
            mofo_dataset d = {.ex = view, .n = n};
            mofo_dataset_shuffle(&d, t->o.seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(epoch + 1));
            for (size_t i = 0; i < n; i++) t->perm[i] = (size_t)view[i].line;
            free(view);
        }
    }
    t->perm_epoch = epoch;
    return 0;
}

/* The forward of this process's rows of the micro-batch in t->ids, t->tg: the loss and the count
 * of positions that count over the whole micro-batch (every process's rows). */
static int forward_rows(mofo_trainer *t, float *loss, int64_t *n_total, mofo_err *err) {
    size_t off = (size_t)t->row0 * (size_t)t->T;
    int rc = mofo_model_forward(t->m, t->ids + off, t->tg + off, t->rows, t->T, loss, err);
    if (rc) return rc;
    *n_total = t->m->n_valid;
    if (t->world == 1) return 0;
    double s[2] = {(double)t->m->n_valid, t->m->n_valid ? t->m->be->sum(t->m->a.losses, (size_t)t->rows * t->T) : 0};
    if ((rc = mofo_comm_sum_f64(t->comm, s, 2, err))) return rc;
    *n_total = (int64_t)s[0];
    *loss = s[0] > 0 ? (float)(s[1] / s[0]) : NAN;
    return 0;
}

/* Copies the spans' entries from (*span, *at) on, at most cap of them, into the bucket (to_bucket)
 * or back out of it; advances (*span, *at) and returns how many. */
static size_t bucket_walk(mofo_trainer *t, int n_spans, int *span, int64_t *at, size_t cap, int to_bucket) {
    size_t fill = 0;
    while (*span < n_spans && fill < cap) {
        const grad_span *sp = &t->spans[*span];
        size_t take = (size_t)(sp->n - *at) < cap - fill ? (size_t)(sp->n - *at) : cap - fill;
        if (to_bucket) t->m->be->copy(t->bucket + fill, sp->g + *at, take);
        else t->m->be->copy(sp->g + *at, t->bucket + fill, take);
        fill += take;
        *at += (int64_t)take;
        if (*at == sp->n) (*span)++, *at = 0;
    }
    return fill;
}

/* The trainable gradients summed over the processes, BUCKET entries per all-reduce. */
static int sum_grads(mofo_trainer *t, int n_spans, mofo_err *err) {
    int span = 0;
    int64_t at = 0;
    while (span < n_spans) {
        int span0 = span;
        int64_t at0 = at;
        size_t n = bucket_walk(t, n_spans, &span, &at, BUCKET, 1);
        int rc = mofo_comm_sum_f32(t->comm, t->bucket, n, err);
        if (rc) return rc;
        bucket_walk(t, n_spans, &span0, &at0, BUCKET, 0);
    }
    return 0;
}

/* After the step: each trainable tensor's new values from the process whose optimizer holds it. */
static int share_updates(mofo_trainer *t, mofo_err *err) {
    int rc = 0;
    for (int i = 0; i < t->m->n_p && !rc; i++)
        if (t->owner_p[i] >= 0)
            rc = mofo_comm_bcast(t->comm, t->m->params + t->m->p[i].offset, (size_t)t->m->p[i].numel * sizeof(float),
                                 t->owner_p[i], err);
    for (int i = 0; t->lora && i < t->lora->n && !rc; i++) {
        const mofo_lora_target *lt = &t->lora->t[i];
        rc = mofo_comm_bcast(t->comm, lt->A, (size_t)(t->lora->r * lt->C) * sizeof(float), t->owner_l[i], err);
        if (!rc) rc = mofo_comm_bcast(t->comm, lt->B, (size_t)(t->lora->r * lt->OC) * sizeof(float), t->owner_l[i], err);
    }
    return rc;
}

int mofo_trainer_step(mofo_trainer *t, mofo_step_metrics *mt, mofo_err *err) {
    mofo_model *m = t->m;
    mofo_step_metrics unused;
    if (!mt) mt = &unused;
    memset(mt, 0, sizeof *mt);
    double lr = mofo_lr_at(t->o.sched, t->o.lr, t->warmup_steps, t->total_steps, t->step);
    mofo_model_zero_grads(m);
    if (t->lora) mofo_lora_zero_grads(t->lora);
    double loss_sum = 0;
    int counted = 0, rc;
    for (int a = 0; a < t->o.grad_accum; a++) {
        int64_t epoch = t->micro / t->n_batches, j = t->micro % t->n_batches;
        if ((rc = epoch_order(t, epoch, err))) return rc;
        int64_t trained = fill_rows(t, &t->train, t->perm, (size_t)j * (size_t)t->B);
        float loss = NAN;
        int64_t n_total;
        size_t off = (size_t)t->row0 * (size_t)t->T;
        if ((rc = forward_rows(t, &loss, &n_total, err))) return rc;
        if ((rc = mofo_model_backward_over(m, t->ids + off, t->tg + off, n_total, err))) return rc;
        t->micro++;
        mt->tokens += trained;
        if (trained > 0) loss_sum += loss, counted++;
        /* with --steps, the last step of an --epochs run may hold fewer micro-batches */
        if (t->o.steps == 0 && t->micro >= t->o.epochs * t->n_batches) break;
    }
    /* the trainable gradients: the model's trainable tensors', then each adapter's gA and gB */
    const mofo_backend *be = m->be;
    int n_spans = 0;
    for (int i = 0; i < m->n_p; i++)
        if (t->trainable[i]) t->spans[n_spans++] = (grad_span){m->grads + m->p[i].offset, m->p[i].numel, i};
    for (int i = 0; t->lora && i < t->lora->n; i++) {
        const mofo_lora_target *lt = &t->lora->t[i];
        t->spans[n_spans++] = (grad_span){lt->gA, (int64_t)t->lora->r * lt->C, -1};
        t->spans[n_spans++] = (grad_span){lt->gB, (int64_t)t->lora->r * lt->OC, -1};
    }
    if (t->world > 1 && (rc = sum_grads(t, n_spans, err))) return rc;
    if (counted > 1)
        for (int i = 0; i < n_spans; i++) be->scale(t->spans[i].g, 1.0f / (float)counted, (size_t)t->spans[i].n);
    double sq = 0;
    const mofo_method_def *method = mofo_method_def_of(t->o.method);
    for (int i = 0; i < n_spans; i++) {
        const grad_span *sp = &t->spans[i];
        if (method->grad_hook && sp->param >= 0) {
            size_t off = m->p[sp->param].offset;
            mt->penalty += method->grad_hook(be, t->o.reg, m->params + off, t->theta0 + off, sp->g, sp->n);
        }
        sq += be->sumsq(sp->g, (size_t)sp->n);
    }
    mt->grad_norm = sqrt(sq);
    if (t->o.clip > 0 && mt->grad_norm > t->o.clip) /* torch.nn.utils.clip_grad_norm_ */
        for (int i = 0; i < n_spans; i++)
            be->scale(t->spans[i].g, (float)(t->o.clip / (mt->grad_norm + 1e-6)), (size_t)t->spans[i].n);
    if (t->world > 1 && !isfinite(sq)) { /* every process sees the same summed gradients: all refuse */
        for (int i = 0; i < n_spans; i++)
            for (int64_t e = 0; e < t->spans[i].n; e++)
                if (!isfinite(t->spans[i].g[e]))
                    return mofo_errf(err, MOFO_ENONFINITE, "the summed gradient of '%s' is %s at entry %lld; step "
                                     "%lld refused on every process, parameters and state unchanged",
                                     t->spans[i].param >= 0 ? m->p[t->spans[i].param].name : "an adapter",
                                     isnan(t->spans[i].g[e]) ? "NaN" : "infinite", (long long)e, (long long)t->step + 1);
    }
    if ((rc = mofo_backend_check(be, err)) || (rc = mofo_optim_step(t->opt, lr, err))) return rc;
    if (t->world > 1 && (rc = share_updates(t, err))) return rc;
    t->step++;
    t->tokens += mt->tokens;
    const mofo_stats *st = mofo_optim_stats(t->opt);
    uint64_t moved[2] = {(uint64_t)st->updated, (uint64_t)st->ever_updated}; /* this process's share */
    if (t->world > 1 && (rc = mofo_comm_sum_u64(t->comm, moved, 2, err))) return rc;
    mofo_diff d = {0};
    if (t->lora)
        mofo_lora_diff(t->lora, m, &d);
    else
        mofo_diff_accum_on(m->be, &d, t->theta0, m->params, (int64_t)m->n_floats);
    if ((rc = mofo_backend_check(be, err))) return rc;
    mt->step = t->step;
    mt->loss = counted ? loss_sum / counted : NAN;
    mt->lr = lr;
    mt->updated_frac = (double)moved[0] / (double)t->trainable_entries;
    mt->coverage = (double)moved[1] / (double)t->trainable_entries;
    mt->world_size = t->world;
    mt->dist_l2 = sqrt(d.sq);
    mt->changed_frac = (double)d.changed / (double)d.numel;
    mt->epoch = (double)t->micro / (double)t->n_batches;
    return 0;
}

int mofo_trainer_eval(mofo_trainer *t, double *loss, mofo_err *err) {
    *loss = NAN;
    double sum = 0;
    int64_t n = 0;
    for (size_t first = 0; first < t->val.n; first += (size_t)t->B) {
        fill_rows(t, &t->val, NULL, first);
        float l = NAN;
        int64_t n_total;
        int rc = forward_rows(t, &l, &n_total, err);
        if (rc) return rc;
        if (n_total > 0) sum += (double)l * (double)n_total, n += n_total;
    }
    if (n) *loss = sum / (double)n;
    return 0;
}

/* ---- checkpoints ---- */

static int remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) { /* a checkpoint's adapter/ */
            if (remove_tree(p) != 0) rc = -1;
        } else if (unlink(p) != 0) {
            rc = -1;
        }
    }
    closedir(d);
    return rmdir(dir) == 0 ? rc : -1;
}


/* Several processes: 0 when the part every process just did succeeded everywhere; else this
 * process's error, or one naming the rank that failed. */
static int agree(const mofo_trainer *t, int rc, const char *what, mofo_err *err) {
    if (t->world == 1) return rc;
    int32_t failed = rc ? t->rank + 1 : 0;
    mofo_err ce = {0};
    if (mofo_comm_max_i32(t->comm, &failed, 1, &ce)) return mofo_errf(err, ce.code, "%s", ce.msg);
    if (!failed || rc) return rc;
    return mofo_errf(err, MOFO_EIO, "%s failed on rank %d", what, (int)failed - 1);
}

/* A process's optimizer state in a checkpoint written by world processes. */
static void optimizer_file(char *out, size_t n, const char *dir, int rank, int world) {
    if (world == 1)
        snprintf(out, n, "%s/optimizer.safetensors", dir);
    else
        snprintf(out, n, "%s/optimizer-%05d-of-%05d.safetensors", dir, rank, world);
}

static int save_rest(const mofo_trainer *t, const char *dir, const char *tmp, mofo_err *err);
static int save_final_here(const mofo_trainer *t, const char *dir, mofo_err *err);

int mofo_trainer_save_checkpoint(const mofo_trainer *t, const char *dir, mofo_err *err) {
    char tmp[4096], path[4200];
    const char *slash = strrchr(dir, '/');
    if (slash)
        snprintf(tmp, sizeof tmp, "%.*s/.%s.tmp", (int)(slash - dir), dir, slash + 1);
    else
        snprintf(tmp, sizeof tmp, ".%s.tmp", dir);
    int rc = 0;
    if (t->rank == 0) {
        remove_tree(tmp);
        if (mkdir(tmp, 0777) != 0) rc = mofo_errf(err, MOFO_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    /* each process's optimizer state, then from rank 0 the rest, and the rename */
    if ((rc = agree(t, rc, "creating the checkpoint's folder", err))) return mofo_err_prefix(err, "checkpoint %s", dir);
    optimizer_file(path, sizeof path, tmp, t->rank, t->world);
    rc = agree(t, mofo_optim_save(t->opt, path, err), "saving the optimizer state", err);
    if (rc == 0 && t->rank == 0) rc = save_rest(t, dir, tmp, err);
    rc = agree(t, rc, "writing the checkpoint", err);
    if (rc) {
        if (t->rank == 0) remove_tree(tmp);
        mofo_err_prefix(err, "checkpoint %s", dir);
    }
    return rc;
}

/* Rank 0's part of a checkpoint in tmp: the model, the tokenizer files, the adapter, the trainer's
 * state, and tmp renamed to dir. */
static int save_rest(const mofo_trainer *t, const char *dir, const char *tmp, mofo_err *err) {
    char path[4200], old[4200];
    /* the model in fp32: the master weights, whatever the checkpoint's dtypes */
    mofo_model view = *t->m;
    mofo_param *p32 = malloc((size_t)t->m->n_p * sizeof *p32);
    int rc = p32 ? 0 : mofo_errf(err, MOFO_ENOMEM, "out of memory");
    if (rc == 0) {
        memcpy(p32, t->m->p, (size_t)t->m->n_p * sizeof *p32);
        for (int i = 0; i < t->m->n_p; i++) p32[i].dtype = MOFO_DT_F32;
        view.p = p32;
        rc = mofo_model_save(&view, tmp, 0, err);
    }
    free(p32);
    if (rc == 0) rc = mofo_copy_tokenizer_files(tok_dir(&t->o), tmp, err);
    if (rc == 0 && t->lora) {
        snprintf(path, sizeof path, "%s/adapter", tmp);
        rc = mofo_lora_save(t->lora, t->m, path, t->o.model_dir, err);
    }
    if (rc == 0) {
        mofo_strbuf sb = {0}, sig = {0};
        signature(t, &sig);
        mofo_sb_printf(&sb,
                       "{\n  \"format\": \"mofo-trainer\",\n  \"version\": 1,\n  \"step\": %lld,\n  \"micro_batch\": %lld,\n"
                       "  \"epoch\": %.17g,\n  \"tokens\": %lld,\n  \"seed\": %llu,\n  \"world_size\": %d,\n"
                       "  \"rng\": \"epoch order: Fisher-Yates by splitmix64 from seed + 0x9E3779B97F4A7C15 * (epoch + 1)\",\n"
                       "  \"signature\": ",
                       (long long)t->step, (long long)t->micro, (double)t->micro / (double)t->n_batches,
                       (long long)t->tokens, (unsigned long long)t->o.seed, t->world);
        mofo_sb_json_string(&sb, sig.data ? sig.data : "", sig.len);
        mofo_sb_puts(&sb, "\n}\n");
        snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
        rc = sb.failed || sig.failed ? mofo_errf(err, MOFO_ENOMEM, "out of memory")
                                     : mofo_write_file_atomic(path, sb.data, sb.len, err);
        mofo_sb_free(&sb);
        mofo_sb_free(&sig);
    }
    if (rc == 0) { /* into place; an existing DIR of the same step is replaced */
        snprintf(old, sizeof old, "%s.old", tmp);
        remove_tree(old);
        int had = rename(dir, old) == 0;
        if (rename(tmp, dir) != 0) {
            rc = mofo_errf(err, MOFO_EIO, "%s: cannot rename %s into place: %s", dir, tmp, strerror(errno));
            if (had) rename(old, dir);
        } else if (had) {
            remove_tree(old);
        }
    }
    return rc;
}

int mofo_trainer_resume(mofo_trainer *t, const char *dir, mofo_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    char *text = NULL;
    size_t len = 0;
    int rc = mofo_read_file(path, &text, &len, err);
    if (rc) return rc;
    mofo_json_doc *doc = mofo_json_parse(text, len, err);
    mofo_model *ck = NULL;
    mofo_strbuf sig = {0};
    if (!doc) {
        rc = mofo_err_prefix(err, "%s", path);
        goto out;
    }
    const mofo_json *r = mofo_json_root(doc), *s = mofo_json_get(r, "signature");
    int64_t step, micro, tokens, saved_world = 1; /* checkpoints from before world_size: one process */
    const mofo_json *w = mofo_json_get(r, "world_size");
    if (w && (!mofo_json_int64(w, &saved_world) || saved_world < 1 || saved_world > 1 << 20)) {
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: world_size must be a positive integer", path);
        goto out;
    }
    if (!mofo_json_int64(mofo_json_get(r, "step"), &step) || !mofo_json_int64(mofo_json_get(r, "micro_batch"), &micro) ||
        !mofo_json_int64(mofo_json_get(r, "tokens"), &tokens) || !s || s->type != MOFO_JSON_STRING || step < 0 ||
        micro < 0) {
        rc = mofo_errf(err, MOFO_EFORMAT, "%s: not a mofo trainer state (step, micro_batch, tokens, signature)", path);
        goto out;
    }
    signature(t, &sig);
    if (!sig.data || strcmp(sig.data, s->str) != 0) {
        rc = mofo_errf(err, MOFO_EINVAL,
                       "%s: the checkpoint was written by a run with other options:\n  checkpoint: %s\n  this run:   %s",
                       path, s->str, sig.data ? sig.data : "");
        goto out;
    }
    if ((rc = mofo_model_load(&ck, dir, err))) goto out;
    if (ck->n_floats != t->m->n_floats || ck->n_p != t->m->n_p) {
        rc = mofo_errf(err, MOFO_EINVAL, "%s: the checkpoint's model does not match %s", dir,
                       t->o.scratch ? "the configured model" : t->o.model_dir);
        goto out;
    }
    t->m->be->upload(t->m->params, ck->params, ck->n_floats);
    if (t->lora) {
        snprintf(path, sizeof path, "%s/adapter", dir);
        if ((rc = mofo_lora_load_weights(t->lora, path, err))) goto out;
    }
    if (saved_world == t->world) { /* each process its own part */
        optimizer_file(path, sizeof path, dir, t->rank, t->world);
        if ((rc = mofo_optim_load(t->opt, path, err))) goto out;
    } else { /* another cut: each tensor's state from whichever part holds it */
        char **paths = calloc((size_t)saved_world, sizeof *paths);
        rc = paths ? 0 : mofo_errf(err, MOFO_ENOMEM, "out of memory");
        for (int64_t k = 0; k < saved_world && !rc; k++) {
            if (!(paths[k] = malloc(4200))) rc = mofo_errf(err, MOFO_ENOMEM, "out of memory");
            else optimizer_file(paths[k], 4200, dir, (int)k, (int)saved_world);
        }
        if (!rc) rc = mofo_optim_load_parts(t->opt, (const char *const *)paths, (int)saved_world, err);
        for (int64_t k = 0; paths && k < saved_world; k++) free(paths[k]);
        free(paths);
        if (rc) goto out;
    }
    t->step = step;
    t->micro = micro;
    t->tokens = tokens;
out:
    mofo_model_free(ck);
    mofo_sb_free(&sig);
    mofo_json_free(doc);
    free(text);
    return rc;
}

void mofo_trainer_memory_plan(const mofo_trainer *t, mofo_memory_plan *plan) {
    const mofo_model *m = t->m;
    /* this process's share of the trainable entries (ZeRO-1 splits them by tensor, about evenly) */
    double entries = (double)t->trainable_entries / t->world, moments = t->o.rule == MOFO_RULE_ADAMW ? 2 : 1;
    memset(plan, 0, sizeof *plan);
    plan->weights = 4.0 * (double)m->n_floats;
    plan->reference = t->theta0 ? 4.0 * (double)m->n_floats : 0;
    plan->gradients = m->grads ? 4.0 * (double)m->n_floats : 0;
    plan->optimizer = entries * 4 * moments + entries / 8;
    for (int i = 0; t->lora && i < t->lora->n; i++) /* A, B and their gradients */
        plan->adapters += 2 * 4.0 * t->lora->r * (double)(t->lora->t[i].C + t->lora->t[i].OC);
    plan->activations = 4.0 * (double)mofo_model_act_floats(&m->cfg, t->rows, t->T);
    if (m->precision != MOFO_PRECISION_FP32) /* bf16 copies 2 bytes an entry, tf32 ones 4 */
        plan->rounding = (m->precision == MOFO_PRECISION_BF16 ? 2.0 : 4.0) *
                         (double)mofo_model_rounded_floats(&m->cfg, t->rows, t->T);
    plan->total = plan->weights + plan->reference + plan->gradients + plan->optimizer + plan->adapters +
                  plan->activations + plan->rounding;
}

float *mofo_trainer_weights(const mofo_trainer *t, mofo_err *err) {
    if (!t->lora) return t->m->params;
    float *w = t->m->be->alloc(t->m->n_floats);
    if (!w) {
        mofo_errf(err, MOFO_ENOMEM, "out of memory for the merged model (%zu floats)", t->m->n_floats);
        return NULL;
    }
    t->m->be->copy(w, t->m->params, t->m->n_floats);
    mofo_lora_merge(t->lora, t->m, t->m->params, w);
    return w;
}

int mofo_trainer_save_final(const mofo_trainer *t, const char *dir, mofo_err *err) {
    if (t->world > 1) { /* every process holds the same model: rank 0 writes it */
        int rc = t->rank == 0 ? save_final_here(t, dir, err) : 0;
        return agree(t, rc, "saving the final model", err);
    }
    return save_final_here(t, dir, err);
}

static int save_final_here(const mofo_trainer *t, const char *dir, mofo_err *err) {
    if (t->lora && !t->o.merge) {
        int rc = mofo_lora_save(t->lora, t->m, dir, t->o.model_dir, err);
        return rc ? rc : mofo_copy_tokenizer_files(tok_dir(&t->o), dir, err);
    }
    if (t->lora) {
        char p[4200];
        snprintf(p, sizeof p, "%s/adapter", dir);
        int rc = mofo_lora_save(t->lora, t->m, p, t->o.model_dir, err);
        if (rc) return rc;
    }
    mofo_model merged = *t->m; /* LoRA: W0 + s B A on the targets, in a copy (the base stays the base) */
    if (!(merged.params = mofo_trainer_weights(t, err))) return err ? err->code : MOFO_ENOMEM;
    int rc = mofo_model_save(&merged, dir, 0, err);
    if (merged.params != t->m->params) t->m->be->free(merged.params);
    if (rc == 0) rc = mofo_copy_tokenizer_files(tok_dir(&t->o), dir, err);
    return rc;
}
