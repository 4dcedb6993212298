/* Sharded parameters (mofo_optim_set_shard): R "processes" are R threads, each with its own
 * optimizer holding a slice of every tensor, their all-reduce a barrier and a sum. Against one
 * optimizer holding the whole tensors (the reference, which it did not produce): after every step
 * each slice's parameters and moments equal the reference's entries bit for bit, and the slices'
 * counts of moved entries add up to the reference's exactly, over changing gradients, multi-chunk
 * tensors, heavy ties at the threshold and uneven cuts. Then the refusals: a failed all-reduce, a
 * NaN on one process, slices that do not add up, and the options sharding does not support. */
#define _POSIX_C_SOURCE 200809L /* pthread barriers */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "mofo/optim.h"

enum { MAX_RANKS = 3, N_TENSORS = 4, STEPS = 6 };

/* the tensors: numel and whether filtered (a 1-dim bias is dense); 150000 spans 3 chunks */
static const int64_t NUMEL[N_TENSORS] = {100, 150000, 4097, 640};
static const int FILTERED[N_TENSORS] = {1, 1, 1, 0};

static uint64_t rng = 99;
static double urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) * 0x1.0p-53 * 2 - 1;
}

/* ---- the all-reduce of R threads ---- */
typedef struct comm {
    int n_ranks;
    pthread_barrier_t bar;
    pthread_mutex_t mu;
    uint64_t sum[1 + N_TENSORS * 4096];
    int calls, fail_at; /* the call (counted on rank 0) that fails on every rank; -1: none */
} comm;

typedef struct rank_ctx {
    comm *cm;
    int rank;
} rank_ctx;

static int allreduce(uint64_t *counts, size_t n, void *ctx) {
    rank_ctx *r = ctx;
    comm *cm = r->cm;
    pthread_barrier_wait(&cm->bar);
    if (r->rank == 0) memset(cm->sum, 0, n * sizeof *cm->sum);
    int fail = cm->calls == cm->fail_at;
    pthread_barrier_wait(&cm->bar);
    pthread_mutex_lock(&cm->mu);
    for (size_t i = 0; i < n; i++) cm->sum[i] += counts[i];
    pthread_mutex_unlock(&cm->mu);
    pthread_barrier_wait(&cm->bar);
    memcpy(counts, cm->sum, n * sizeof *counts);
    pthread_barrier_wait(&cm->bar);
    if (r->rank == 0) cm->calls++;
    pthread_barrier_wait(&cm->bar);
    return fail ? -1 : 0;
}

/* ---- one process: its slices [cut[r], cut[r+1]) of each tensor ---- */
typedef struct shard {
    rank_ctx ctx;
    mofo_optim *opt;
    float *w[N_TENSORS], *g[N_TENSORS];
    int64_t lo[N_TENSORS], n[N_TENSORS];
    double lr;
    int rc;
    mofo_err err;
} shard;

static mofo_optim *make_opt(mofo_err *err) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.alpha = 0.1;
    o.weight_decay = 0.01;
    o.threads = 2;
    return mofo_optim_create(&o, err);
}

/* registers tensor i's n entries (as 1-dim: a slice of a flattened tensor) in a group filtered as
 * the tensor is */
static int add(mofo_optim *opt, int i, float *w, float *g, int64_t n, mofo_err *err) {
    mofo_options o;
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    o.weight_decay = 0.01;
    mofo_group gr;
    mofo_group_init(&gr, &o);
    gr.alpha = 0.1;
    gr.filtered = FILTERED[i];
    int gi = mofo_optim_add_group(opt, &gr, err);
    char name[16];
    snprintf(name, sizeof name, "t%d", i);
    return gi < 0 ? gi : mofo_optim_add_param(opt, name, w, g, 1, (int64_t[]){n}, gi, err);
}

static void *step_thread(void *arg) {
    shard *s = arg;
    s->rc = mofo_optim_step(s->opt, s->lr, &s->err);
    return NULL;
}

/* Steps every shard at once (one thread each); returns how many failed. */
static int step_all(shard *sh, int R, double lr) {
    pthread_t th[MAX_RANKS];
    for (int r = 0; r < R; r++) {
        sh[r].lr = lr;
        pthread_create(&th[r], NULL, step_thread, &sh[r]);
    }
    int bad = 0;
    for (int r = 0; r < R; r++) {
        pthread_join(th[r], NULL);
        bad += sh[r].rc != 0;
    }
    return bad;
}

static void setup(shard *sh, comm *cm, int R, const double *frac, float **w0, int64_t extra) {
    memset(cm, 0, sizeof *cm);
    cm->n_ranks = R;
    cm->fail_at = -1;
    pthread_barrier_init(&cm->bar, NULL, (unsigned)R);
    pthread_mutex_init(&cm->mu, NULL);
    for (int r = 0; r < R; r++) {
        shard *s = &sh[r];
        memset(s, 0, sizeof *s);
        s->ctx = (rank_ctx){cm, r};
        s->opt = make_opt(&s->err);
        CHECK(s->opt && mofo_optim_set_allreduce(s->opt, allreduce, &s->ctx, &s->err) == 0, "%s", s->err.msg);
        for (int i = 0; i < N_TENSORS; i++) {
            int64_t a = (int64_t)(frac[r] * (double)NUMEL[i]), b = (int64_t)(frac[r + 1] * (double)NUMEL[i]);
            s->lo[i] = a, s->n[i] = b - a;
            s->w[i] = malloc((size_t)s->n[i] * sizeof(float));
            s->g[i] = malloc((size_t)s->n[i] * sizeof(float));
            memcpy(s->w[i], w0[i] + a, (size_t)s->n[i] * sizeof(float));
            CHECK(add(s->opt, i, s->w[i], s->g[i], s->n[i], &s->err) == i, "%s", s->err.msg);
            CHECK(mofo_optim_set_shard(s->opt, i, NUMEL[i] + extra, &s->err) == 0, "%s", s->err.msg);
        }
    }
}

static void teardown(shard *sh, comm *cm, int R) {
    for (int r = 0; r < R; r++) {
        mofo_optim_destroy(sh[r].opt);
        for (int i = 0; i < N_TENSORS; i++) free(sh[r].w[i]), free(sh[r].g[i]);
    }
    pthread_barrier_destroy(&cm->bar);
    pthread_mutex_destroy(&cm->mu);
}

/* gradients for a step: fresh draws in [-s, s], s growing; tensor 2's odd entries (2048, more
 * than its k = 409) all get the same 3 s, so they tie in |m| at the top and the threshold */
static void draw_grads(float **g, int step) {
    double s = 1 + 0.3 * step;
    for (int i = 0; i < N_TENSORS; i++)
        for (int64_t e = 0; e < NUMEL[i]; e++) {
            double x = urand() * s;
            g[i][e] = (float)(i == 2 && e % 2 ? 3 * s : x);
        }
}

static void against_reference(int R, const double *frac, const char *label) {
    mofo_err err = {0};
    float *w0[N_TENSORS], *wr[N_TENSORS], *gr[N_TENSORS];
    mofo_optim *ref = make_opt(&err);
    for (int i = 0; i < N_TENSORS; i++) {
        w0[i] = malloc((size_t)NUMEL[i] * sizeof(float));
        wr[i] = malloc((size_t)NUMEL[i] * sizeof(float));
        gr[i] = malloc((size_t)NUMEL[i] * sizeof(float));
        for (int64_t e = 0; e < NUMEL[i]; e++) w0[i][e] = (float)urand();
        memcpy(wr[i], w0[i], (size_t)NUMEL[i] * sizeof(float));
        CHECK(add(ref, i, wr[i], gr[i], NUMEL[i], &err) == i, "%s", err.msg);
    }
    shard sh[MAX_RANKS];
    comm cm;
    setup(sh, &cm, R, frac, w0, 0);
    int same_w = 1, same_m = 1, same_v = 1, counts = 1;
    for (int step = 0; step < STEPS; step++) {
        draw_grads(gr, step);
        for (int r = 0; r < R; r++)
            for (int i = 0; i < N_TENSORS; i++)
                memcpy(sh[r].g[i], gr[i] + sh[r].lo[i], (size_t)sh[r].n[i] * sizeof(float));
        double lr = 1e-2 * (1 + step);
        CHECK(mofo_optim_step(ref, lr, &err) == 0, "%s", err.msg);
        CHECK(step_all(sh, R, lr) == 0, "%s: %s", label, sh[0].err.msg);
        const mofo_stats *rs = mofo_optim_stats(ref);
        for (int i = 0; i < N_TENSORS; i++) {
            int64_t moved = 0;
            for (int r = 0; r < R; r++) {
                const shard *s = &sh[r];
                moved += mofo_optim_stats(s->opt)->param_updated[i];
                same_w &= memcmp(s->w[i], wr[i] + s->lo[i], (size_t)s->n[i] * sizeof(float)) == 0;
                same_m &= memcmp(mofo_optim_m(s->opt, i), mofo_optim_m(ref, i) + s->lo[i], (size_t)s->n[i] * 4) == 0;
                same_v &= memcmp(mofo_optim_v(s->opt, i), mofo_optim_v(ref, i) + s->lo[i], (size_t)s->n[i] * 4) == 0;
            }
            if (moved != rs->param_updated[i]) {
                counts = 0;
                fprintf(stderr, "%s step %d tensor %d: slices moved %lld, the whole tensor %lld\n", label, step + 1, i,
                        (long long)moved, (long long)rs->param_updated[i]);
            }
        }
    }
    CHECK(same_w && same_m && same_v, "%s: slices differ from the whole tensors (w %d, m %d, v %d)", label, same_w,
          same_m, same_v);
    CHECK(counts, "%s: moved counts differ", label);
    /* the ties: all 2048 entries tied at tensor 2's threshold moved, on every slice */
    CHECK(mofo_optim_stats(ref)->param_updated[2] == NUMEL[2] / 2, "%s: %lld moved in tensor 2, not its 2048 tied",
          label, (long long)mofo_optim_stats(ref)->param_updated[2]);
    printf("%-28s %d steps, %d slices: bit-identical to the whole tensors, counts equal\n", label, STEPS, R);
    teardown(sh, &cm, R);
    mofo_optim_destroy(ref);
    for (int i = 0; i < N_TENSORS; i++) free(w0[i]), free(wr[i]), free(gr[i]);
}

/* The refusals: every process refuses together and nothing moves. */
static void refusals(void) {
    const double half[] = {0, 0.5, 1};
    float *w0[N_TENSORS], *g[N_TENSORS];
    for (int i = 0; i < N_TENSORS; i++) {
        w0[i] = malloc((size_t)NUMEL[i] * sizeof(float));
        g[i] = malloc((size_t)NUMEL[i] * sizeof(float));
        for (int64_t e = 0; e < NUMEL[i]; e++) w0[i][e] = (float)urand();
    }
    draw_grads(g, 0);
    shard sh[2];
    comm cm;
    for (int kind = 0; kind < 3; kind++) { /* 0: the first all-reduce fails; 1: a NaN on rank 1; 2: sizes */
        setup(sh, &cm, 2, half, w0, kind == 2 ? 1 : 0);
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < N_TENSORS; i++) memcpy(sh[r].g[i], g[i] + sh[r].lo[i], (size_t)sh[r].n[i] * 4);
        if (kind == 0) cm.fail_at = 0;
        if (kind == 1) sh[1].g[1][7] = NAN;
        CHECK(step_all(sh, 2, 0.1) == 2, "kind %d: not every process refused", kind);
        int unchanged = 1;
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < N_TENSORS; i++)
                unchanged &= memcmp(sh[r].w[i], w0[i] + sh[r].lo[i], (size_t)sh[r].n[i] * 4) == 0;
        CHECK(unchanged && mofo_optim_stats(sh[0].opt)->step == 0, "kind %d: something moved", kind);
        const char *want[] = {"all-reduce", "another process", "slices hold"};
        CHECK(strstr(sh[0].err.msg, want[kind]), "kind %d: rank 0 says: %s", kind, sh[0].err.msg);
        if (kind == 1) CHECK(strstr(sh[1].err.msg, "'t1'") && strstr(sh[1].err.msg, "NaN"), "rank 1: %s", sh[1].err.msg);
        teardown(sh, &cm, 2);
    }
    for (int i = 0; i < N_TENSORS; i++) free(w0[i]), free(g[i]);

    /* what sharding does not support, named */
    mofo_err err = {0};
    float w[8] = {0}, gg[8] = {0};
    for (int bad = 0; bad < 4; bad++) {
        mofo_options o;
        mofo_options_init(&o, MOFO_RULE_ADAMW);
        if (bad == 1) o.partition = MOFO_PARTITION_ROWS;
        if (bad == 2) o.ties = MOFO_TIES_EXACT_K;
        mofo_optim *opt = mofo_optim_create(&o, &err);
        mofo_optim_add_param(opt, "w", w, gg, 2, (int64_t[]){2, 4}, MOFO_GROUP_AUTO, &err);
        int rc = mofo_optim_set_shard(opt, 0, bad == 0 ? 4 : 16, &err);
        const char *want[] = {"cannot come from", "partition tensor", "ties keep", "no all-reduce"};
        if (bad == 3) rc = rc ? rc : mofo_optim_step(opt, 0.1, &err);
        CHECK(rc != 0 && strstr(err.msg, want[bad]), "case %d: %s", bad, err.msg);
        mofo_optim_destroy(opt);
    }
}

int main(void) {
    against_reference(2, (const double[]){0, 0.5, 1}, "2 halves");
    against_reference(2, (const double[]){0, 0.37, 1}, "2 uneven slices");
    against_reference(3, (const double[]){0, 0.2, 0.71, 1}, "3 uneven slices");
    refusals();
    return CHECK_DONE();
}
