/* libmofo: options, groups, the parameter registry and accessors. The step is in step.c. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "internal.h"

static const char *RULES[] = {"adamw", "lion", "sgdm"};
static const char *FILTERS[] = {"momentum", "gradient", "update", "random", "none"};
static const char *PARTITIONS[] = {"tensor", "rows", "model"};
static const char *POLICIES[] = {"ndim", "names"};
static const char *TIES[] = {"keep", "exact-k"};
static const char *DEVICES[] = {"cpu", "cuda"};
#define COUNT(a) (int)(sizeof a / sizeof a[0])

const char *mofo_rule_name(mofo_rule r) { return (unsigned)r < (unsigned)COUNT(RULES) ? RULES[r] : "?"; }
const char *mofo_filter_name(mofo_filter f) { return (unsigned)f < (unsigned)COUNT(FILTERS) ? FILTERS[f] : "?"; }
const char *mofo_partition_name(mofo_partition p) {
    return (unsigned)p < (unsigned)COUNT(PARTITIONS) ? PARTITIONS[p] : "?";
}
const char *mofo_device_name(mofo_device d) { return (unsigned)d < (unsigned)COUNT(DEVICES) ? DEVICES[d] : "?"; }

void mofo_options_init(mofo_options *o, mofo_rule rule) {
    memset(o, 0, sizeof *o);
    o->rule = rule;
    o->filter = MOFO_FILTER_MOMENTUM;
    o->partition = MOFO_PARTITION_TENSOR;
    o->rows_per_block = 1;
    o->policy = MOFO_POLICY_NDIM;
    o->ties = MOFO_TIES_KEEP;
    o->alpha = 0.15;
    o->beta1 = 0.9;
    o->beta2 = rule == MOFO_RULE_LION ? 0.99 : 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0.0;
    o->track_coverage = 1;
}

static int parse_enum(const char *name, const char *value, const char *const *names, int n, int *out,
                      mofo_err *err) {
    for (int i = 0; i < n; i++)
        if (strcmp(value, names[i]) == 0) {
            *out = i;
            return 0;
        }
    char allowed[128] = "";
    for (int i = 0; i < n; i++) {
        strncat(allowed, names[i], sizeof allowed - strlen(allowed) - 1);
        if (i + 1 < n) strncat(allowed, ", ", sizeof allowed - strlen(allowed) - 1);
    }
    return mofo_errf(err, MOFO_EINVAL, "option %s: '%s' is not one of %s", name, value, allowed);
}

static int parse_double(const char *name, const char *value, double *out, mofo_err *err) {
    char *end;
    errno = 0;
    double d = strtod(value, &end);
    if (errno || end == value || *end)
        return mofo_errf(err, MOFO_EINVAL, "option %s: '%s' is not a number", name, value);
    *out = d;
    return 0;
}

static int parse_int(const char *name, const char *value, long long *out, mofo_err *err) {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end)
        return mofo_errf(err, MOFO_EINVAL, "option %s: '%s' is not an integer", name, value);
    *out = v;
    return 0;
}

int mofo_options_set(mofo_options *o, const char *name, const char *value, mofo_err *err) {
    int e = 0;
    long long i = 0;
    int rc;
    if (strcmp(name, "rule") == 0) {
        if ((rc = parse_enum(name, value, RULES, COUNT(RULES), &e, err))) return rc;
        o->rule = (mofo_rule)e;
        o->beta1 = 0.9;
        o->beta2 = o->rule == MOFO_RULE_LION ? 0.99 : 0.999;
        return 0;
    }
    if (strcmp(name, "filter") == 0) {
        if ((rc = parse_enum(name, value, FILTERS, COUNT(FILTERS), &e, err))) return rc;
        o->filter = (mofo_filter)e;
        return 0;
    }
    if (strcmp(name, "partition") == 0) {
        if ((rc = parse_enum(name, value, PARTITIONS, COUNT(PARTITIONS), &e, err))) return rc;
        o->partition = (mofo_partition)e;
        return 0;
    }
    if (strcmp(name, "policy") == 0) {
        if ((rc = parse_enum(name, value, POLICIES, COUNT(POLICIES), &e, err))) return rc;
        o->policy = (mofo_policy)e;
        return 0;
    }
    if (strcmp(name, "ties") == 0) {
        if ((rc = parse_enum(name, value, TIES, COUNT(TIES), &e, err))) return rc;
        o->ties = (mofo_ties)e;
        return 0;
    }
    if (strcmp(name, "device") == 0) {
        if ((rc = parse_enum(name, value, DEVICES, COUNT(DEVICES), &e, err))) return rc;
        o->device = (mofo_device)e;
        return 0;
    }
    struct { const char *name; double *dest; } reals[] = {
        {"alpha", &o->alpha}, {"beta1", &o->beta1}, {"beta2", &o->beta2},
        {"eps", &o->eps},     {"weight_decay", &o->weight_decay},
    };
    for (int k = 0; k < COUNT(reals); k++)
        if (strcmp(name, reals[k].name) == 0) return parse_double(name, value, reals[k].dest, err);
    if (strcmp(name, "rows_per_block") == 0) {
        if ((rc = parse_int(name, value, &i, err))) return rc;
        o->rows_per_block = i;
        return 0;
    }
    if (strcmp(name, "seed") == 0) {
        if ((rc = parse_int(name, value, &i, err))) return rc;
        o->seed = (uint64_t)i;
        return 0;
    }
    int *small_int = strcmp(name, "threads") == 0 ? &o->threads
                     : strcmp(name, "track_coverage") == 0 ? &o->track_coverage
                     : strcmp(name, "stochastic_rounding") == 0 ? &o->stochastic_rounding
                                                            : NULL;
    if (small_int) {
        if ((rc = parse_int(name, value, &i, err))) return rc;
        if (i < 0 || i > 1 << 20) return mofo_errf(err, MOFO_EINVAL, "option %s: %lld is out of range", name, i);
        *small_int = (int)i;
        return 0;
    }
    return mofo_errf(err, MOFO_EINVAL, "unknown option '%s'", name);
}

static int check_alpha(const char *who, double alpha, mofo_err *err) {
    if (!(alpha > 0 && alpha <= 1))
        return mofo_errf(err, MOFO_EINVAL, "%s: alpha = %g is outside (0, 1]", who, alpha);
    return 0;
}

int mofo_options_check(const mofo_options *o, mofo_err *err) {
    if ((unsigned)o->rule >= (unsigned)COUNT(RULES)) return mofo_errf(err, MOFO_EINVAL, "option rule: unknown rule %d", o->rule);
    if ((unsigned)o->filter >= (unsigned)COUNT(FILTERS))
        return mofo_errf(err, MOFO_EINVAL, "option filter: unknown filter %d", o->filter);
    if ((unsigned)o->partition >= (unsigned)COUNT(PARTITIONS))
        return mofo_errf(err, MOFO_EINVAL, "option partition: unknown partition %d", o->partition);
    if ((unsigned)o->policy >= (unsigned)COUNT(POLICIES))
        return mofo_errf(err, MOFO_EINVAL, "option policy: unknown policy %d", o->policy);
    if ((unsigned)o->ties >= (unsigned)COUNT(TIES)) return mofo_errf(err, MOFO_EINVAL, "option ties: unknown mode %d", o->ties);
    if (check_alpha("option alpha", o->alpha, err)) return MOFO_EINVAL;
    if (!(o->beta1 >= 0 && o->beta1 < 1))
        return mofo_errf(err, MOFO_EINVAL, "option beta1: %g is outside [0, 1)", o->beta1);
    if (!(o->beta2 >= 0 && o->beta2 < 1))
        return mofo_errf(err, MOFO_EINVAL, "option beta2: %g is outside [0, 1)", o->beta2);
    if (!(o->eps > 0 && isfinite(o->eps)))
        return mofo_errf(err, MOFO_EINVAL, "option eps: %g must be positive", o->eps);
    if (!(o->weight_decay >= 0 && isfinite(o->weight_decay)))
        return mofo_errf(err, MOFO_EINVAL, "option weight_decay: %g must be >= 0", o->weight_decay);
    if (o->partition == MOFO_PARTITION_ROWS && o->rows_per_block < 1)
        return mofo_errf(err, MOFO_EINVAL, "option rows_per_block: %lld must be >= 1", (long long)o->rows_per_block);
    if (o->threads < 0) return mofo_errf(err, MOFO_EINVAL, "option threads: %d must be >= 0", o->threads);
    if ((unsigned)o->device >= (unsigned)COUNT(DEVICES))
        return mofo_errf(err, MOFO_EINVAL, "option device: unknown device %d", o->device);
    return 0;
}

void mofo_group_init(mofo_group *g, const mofo_options *o) {
    g->lr_scale = 1.0;
    g->weight_decay = o->weight_decay;
    g->alpha = o->alpha;
    g->filtered = o->filter != MOFO_FILTER_NONE;
}

void mofo_policy_group(const mofo_options *o, const char *name, int ndim, mofo_group *out) {
    mofo_group_init(out, o);
    if (o->policy == MOFO_POLICY_NAMES) {
        out->filtered &= !strstr(name, "bias") && !strstr(name, "norm");
        if (strstr(name, "norm") || strstr(name, "ln_f")) out->weight_decay = 0;
    } else if (ndim < 2) {
        out->filtered = 0;
        out->weight_decay = 0;
    }
}

mofo_optim *mofo_optim_create(const mofo_options *o, mofo_err *err) {
    if (mofo_options_check(o, err)) return NULL;
    if (o->device == MOFO_DEVICE_CUDA && mofo_cuda_probe(err)) return NULL;
    mofo_optim *opt = calloc(1, sizeof *opt);
    if (!opt) {
        mofo_errf(err, MOFO_ENOMEM, "out of memory creating the optimizer");
        return NULL;
    }
    opt->opt = *o;
    return opt;
}

static int check_group(const mofo_group *g, mofo_err *err) {
    if (!(g->lr_scale >= 0 && isfinite(g->lr_scale)))
        return mofo_errf(err, MOFO_EINVAL, "group: lr_scale = %g must be >= 0", g->lr_scale);
    if (!(g->weight_decay >= 0 && isfinite(g->weight_decay)))
        return mofo_errf(err, MOFO_EINVAL, "group: weight_decay = %g must be >= 0", g->weight_decay);
    return check_alpha("group", g->alpha, err);
}

int mofo_optim_add_group(mofo_optim *opt, const mofo_group *g, mofo_err *err) {
    if (check_group(g, err)) return MOFO_EINVAL;
    mofo_group *gs = realloc(opt->groups, (size_t)(opt->n_groups + 1) * sizeof *gs);
    if (!gs) return mofo_errf(err, MOFO_ENOMEM, "out of memory adding a group");
    opt->groups = gs;
    gs[opt->n_groups] = *g;
    if (opt->opt.filter == MOFO_FILTER_NONE) gs[opt->n_groups].filtered = 0;
    return opt->n_groups++;
}

/* The state of a new parameter: host arrays on the CPU, device arrays under CUDA. */
static int alloc_state(const mofo_optim *opt, param_state *p, mofo_err *err) {
    int with_v = opt->opt.rule == MOFO_RULE_ADAMW, with_touched = opt->opt.track_coverage != 0;
    if (opt->opt.device == MOFO_DEVICE_CUDA) return mofo_cuda_param_init(p, with_v, with_touched, opt->cuda_stream, err);
    p->m = calloc((size_t)p->numel, sizeof(float));
    if (with_v) p->v = calloc((size_t)p->numel, sizeof(float));
    if (with_touched) p->touched = calloc((size_t)((p->numel + 63) / 64), sizeof(uint64_t));
    if (!p->m || (with_v && !p->v) || (with_touched && !p->touched)) {
        free(p->m);
        free(p->v);
        free(p->touched);
        return mofo_errf(err, MOFO_ENOMEM, "parameter '%s': out of memory for %lld entries of state", p->name,
                         (long long)p->numel);
    }
    return 0;
}

static void free_state(const mofo_optim *opt, param_state *p) {
    if (opt->opt.device == MOFO_DEVICE_CUDA) {
        mofo_cuda_param_free(p);
        return;
    }
    free(p->m);
    free(p->v);
    free(p->touched);
}

static int add_param(mofo_optim *opt, const char *name, void *data, const void *grad, int bf16, int ndim,
                     const int64_t *shape, int group, mofo_err *err) {
    if (!name || !*name) return mofo_errf(err, MOFO_EINVAL, "add_param: a parameter needs a name");
    if (opt->planned)
        return mofo_errf(err, MOFO_EINVAL, "parameter '%s': parameters must be added before the first step", name);
    if (!data || !grad) return mofo_errf(err, MOFO_EINVAL, "parameter '%s': data or grad is NULL", name);
    if (ndim < 0 || ndim > 8 || (ndim > 0 && !shape))
        return mofo_errf(err, MOFO_EINVAL, "parameter '%s': %d dimensions (0 to 8 supported)", name, ndim);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0 || numel > INT64_MAX / shape[d])
            return mofo_errf(err, MOFO_EINVAL, "parameter '%s': dimension %d has size %lld", name, d,
                             (long long)shape[d]);
        numel *= shape[d];
    }
    if (group != MOFO_GROUP_AUTO && (group < 0 || group >= opt->n_groups))
        return mofo_errf(err, MOFO_EINVAL, "parameter '%s': group %d does not exist (%d groups)", name, group,
                         opt->n_groups);
    for (int i = 0; i < opt->n_params; i++)
        if (strcmp(opt->params[i].name, name) == 0)
            return mofo_errf(err, MOFO_EINVAL, "parameter '%s' is registered twice", name);
    if (group == MOFO_GROUP_AUTO) {
        mofo_group g;
        mofo_policy_group(&opt->opt, name, ndim, &g);
        /* reuse an identical automatic group */
        for (group = 0; group < opt->n_groups; group++) {
            const mofo_group *h = &opt->groups[group];
            if (h->lr_scale == g.lr_scale && h->weight_decay == g.weight_decay && h->alpha == g.alpha &&
                h->filtered == g.filtered)
                break;
        }
        if (group == opt->n_groups && (group = mofo_optim_add_group(opt, &g, err)) < 0) return group;
    }
    param_state *ps = realloc(opt->params, (size_t)(opt->n_params + 1) * sizeof *ps);
    if (!ps) return mofo_errf(err, MOFO_ENOMEM, "parameter '%s': out of memory", name);
    opt->params = ps;
    param_state *p = &ps[opt->n_params];
    memset(p, 0, sizeof *p);
    if (!(p->name = malloc(strlen(name) + 1))) return mofo_errf(err, MOFO_ENOMEM, "parameter '%s': out of memory", name);
    strcpy(p->name, name);
    p->data = data;
    p->grad = grad;
    p->bf16 = bf16;
    p->numel = numel;
    int rc = alloc_state(opt, p, err);
    if (rc) {
        free(p->name);
        return rc;
    }
    p->ndim = ndim;
    for (int d = 0; d < ndim; d++) p->shape[d] = shape[d];
    p->numel = numel;
    p->group = group;
    opt->entries += numel;
    return opt->n_params++;
}

int mofo_optim_add_param(mofo_optim *opt, const char *name, float *data, const float *grad, int ndim,
                         const int64_t *shape, int group, mofo_err *err) {
    return add_param(opt, name, data, grad, 0, ndim, shape, group, err);
}

int mofo_optim_add_param_bf16(mofo_optim *opt, const char *name, uint16_t *data, const uint16_t *grad, int ndim,
                              const int64_t *shape, int group, mofo_err *err) {
    if (opt->opt.device != MOFO_DEVICE_CUDA)
        return mofo_errf(err, MOFO_EINVAL, "parameter '%s': bf16 parameters need the option device = cuda",
                         name ? name : "?");
    return add_param(opt, name, data, grad, 1, ndim, shape, group, err);
}

void mofo_optim_destroy(mofo_optim *opt) {
    if (!opt) return;
    for (int i = 0; i < opt->n_params; i++) {
        free(opt->params[i].name);
        free_state(opt, &opt->params[i]);
    }
    mofo_cuda_free_step(opt);
    for (int i = 0; i < opt->n_chunks; i++) {
        free(opt->chunks[i].cand);
        free(opt->chunks[i].inside_keys);
    }
    for (int i = 0; i < opt->n_blocks; i++) {
        free(opt->blocks[i].hist);
        free(opt->blocks[i].sort_keys);
    }
    free(opt->params);
    free(opt->groups);
    free(opt->chunks);
    free(opt->blocks);
    free(opt->block_stats);
    free(opt->param_updated);
    free(opt->shard_counts);
    mofo_optim_free_scratch(opt);
    free(opt);
}

int mofo_optim_select_by_sort(mofo_optim *o, mofo_err *err) {
    if (o->planned) return mofo_errf(err, MOFO_EINVAL, "select_by_sort must be chosen before the first step");
    if (o->opt.device != MOFO_DEVICE_CPU) return mofo_errf(err, MOFO_EINVAL, "select_by_sort is a CPU baseline only");
    o->select_by_sort = 1;
    return 0;
}

const mofo_stats *mofo_optim_stats(const mofo_optim *opt) { return &opt->stats; }
int mofo_optim_n_params(const mofo_optim *opt) { return opt->n_params; }
const char *mofo_optim_param_name(const mofo_optim *opt, int i) {
    return i >= 0 && i < opt->n_params ? opt->params[i].name : NULL;
}
int mofo_optim_param_filtered(const mofo_optim *opt, int i) {
    return i >= 0 && i < opt->n_params && opt->groups[opt->params[i].group].filtered;
}
int mofo_optim_set_param(mofo_optim *opt, int i, float *data, const float *grad, mofo_err *err) {
    if (i < 0 || i >= opt->n_params)
        return mofo_errf(err, MOFO_EINVAL, "parameter %d: the optimizer holds %d", i, opt->n_params);
    param_state *p = &opt->params[i];
    if (!data || !grad) return mofo_errf(err, MOFO_EINVAL, "'%s': NULL data or gradient", p->name);
    p->data = data;
    p->grad = grad;
    opt->arrays_moved = 1; /* a CUDA step uploads the new pointers */
    return 0;
}

int mofo_optim_set_allreduce(mofo_optim *opt, mofo_allreduce_fn fn, void *ctx, mofo_err *err) {
    if (opt->planned) return mofo_errf(err, MOFO_EINVAL, "the all-reduce must be given before the first step");
    opt->allreduce = fn;
    opt->allreduce_ctx = ctx;
    return 0;
}

int mofo_optim_set_shard(mofo_optim *opt, int i, int64_t full_numel, mofo_err *err) {
    if (i < 0 || i >= opt->n_params)
        return mofo_errf(err, MOFO_EINVAL, "parameter %d: the optimizer holds %d", i, opt->n_params);
    param_state *p = &opt->params[i];
    if (opt->planned) return mofo_errf(err, MOFO_EINVAL, "'%s': shards are declared before the first step", p->name);
    if (full_numel < p->numel)
        return mofo_errf(err, MOFO_EINVAL, "'%s': a slice of %lld entries cannot come from a tensor of %lld", p->name,
                         (long long)p->numel, (long long)full_numel);
    if (opt->opt.device != MOFO_DEVICE_CPU)
        return mofo_errf(err, MOFO_EINVAL, "'%s': sharded parameters are CPU only", p->name);
    if (opt->opt.partition != MOFO_PARTITION_TENSOR)
        return mofo_errf(err, MOFO_EINVAL, "'%s': sharded parameters need partition tensor (a slice may cut a "
                                           "block of rows or the model's block)", p->name);
    if (opt->opt.ties != MOFO_TIES_KEEP)
        return mofo_errf(err, MOFO_EINVAL, "'%s': sharded parameters need ties keep (exact-k orders ties by their "
                                           "index in the whole tensor)", p->name);
    p->full_numel = full_numel;
    return 0;
}

uint64_t *mofo_optim_touched(mofo_optim *opt, int i) {
    return i >= 0 && i < opt->n_params ? opt->params[i].touched : NULL;
}

int mofo_optim_restore(mofo_optim *opt, int64_t step, mofo_err *err) {
    if (step < 0) return mofo_errf(err, MOFO_EINVAL, "step %lld: must be >= 0", (long long)step);
    int64_t ever = 0;
    for (int i = 0; i < opt->n_params; i++) {
        const param_state *p = &opt->params[i];
        if (!p->touched) continue;
        size_t words = (size_t)((p->numel + 63) / 64);
        const uint64_t *bits = p->touched;
        uint64_t *host = NULL;
        if (opt->opt.device == MOFO_DEVICE_CUDA) { /* counted from a host copy */
            if (!(host = malloc(words * 8)))
                return mofo_errf(err, MOFO_ENOMEM, "restore: out of memory counting '%s''s coverage bits", p->name);
            int rc = mofo_cuda_copy(host, p->touched, words * 8, 0, err);
            if (rc) {
                free(host);
                return rc;
            }
            bits = host;
        }
        for (size_t w = 0; w < words; w++) ever += __builtin_popcountll(bits[w]);
        free(host);
    }
    opt->step = step;
    opt->ever_updated = ever;
    opt->stats.step = step;
    opt->stats.ever_updated = ever;
    opt->stats.entries = opt->entries;
    opt->stats.coverage = opt->entries ? (double)ever / (double)opt->entries : 0;
    return 0;
}

size_t mofo_options_size(void) { return sizeof(mofo_options); }

int mofo_optim_set_stream(mofo_optim *opt, void *stream, mofo_err *err) {
    if (opt->opt.device != MOFO_DEVICE_CUDA) return mofo_errf(err, MOFO_EINVAL, "set_stream: a CPU optimizer has no stream");
    opt->cuda_stream = stream;
    return 0;
}

float *mofo_optim_master(mofo_optim *opt, int i) {
    return i >= 0 && i < opt->n_params ? opt->params[i].master : NULL;
}

float *mofo_optim_m(mofo_optim *opt, int i) { return i >= 0 && i < opt->n_params ? opt->params[i].m : NULL; }
float *mofo_optim_v(mofo_optim *opt, int i) { return i >= 0 && i < opt->n_params ? opt->params[i].v : NULL; }
