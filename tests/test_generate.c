/* KV-cache inference against transformers: greedy generation reproduces generate.json of the fixture
 * models token for token, with the cache and without; the cache's logits equal a full forward pass;
 * sampling is reproducible from its seed and top-p near 0 is greedy; a sliding window (with GQA, as
 * llama-tiny has 4 query and 2 key/value heads) gives a full forward pass's logits. On the CPU and,
 * as test_generate_cudasim, with the model on the CUDA backend under the simulator. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "device.h"
#include "io/json.h"
#include "model/infer.h"
#include "model/model.h"
#include "text/utf8.h"

static int ids_of(const mofo_json *arr, int *out, int cap) {
    int n = 0;
    for (const mofo_json *e = arr ? arr->child : NULL; e && n < cap; e = e->next) {
        int64_t v;
        if (!mofo_json_int64(e, &v)) return -1;
        out[n++] = (int)v;
    }
    return n;
}

/* rel_err and memcmp of two of the model's arrays (n floats each), on host copies */
static double dev_rel_err(const mofo_model *m, const float *a, const float *b, size_t n) {
    float *ha = test_host_copy(m, a, n), *hb = test_host_copy(m, b, n);
    double e = ha && hb ? rel_err(ha, hb, (long)n) : INFINITY;
    free(ha);
    free(hb);
    return e;
}

static int dev_same_bits(const mofo_model *m, const float *a, const float *b, size_t n) {
    float *ha = test_host_copy(m, a, n), *hb = test_host_copy(m, b, n);
    int same = ha && hb && memcmp(ha, hb, n * sizeof *ha) == 0;
    free(ha);
    free(hb);
    return same;
}

static void check_model(const char *name) {
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, name);
    snprintf(path, sizeof path, "%s/generate.json", dir);
    mofo_err err = {0};
    mofo_model *m = NULL;
    char *text = NULL;
    size_t len = 0;
    CHECK(mofo_model_load(&m, dir, &err) == 0, "%s", err.msg);
    CHECK(!m || mofo_model_to_device(m, TEST_DEVICE, &err) == 0, "%s", err.msg);
    CHECK(mofo_read_file(path, &text, &len, &err) == 0, "%s", err.msg);
    if (!m || !text) {
        mofo_model_free(m);
        free(text);
        return;
    }
    mofo_json_doc *doc = mofo_json_parse(text, len, &err);
    CHECK(doc != NULL, "%s", err.msg);
    const mofo_json *cases = doc ? mofo_json_get(mofo_json_root(doc), "cases") : NULL;
    int n_cases = 0;
    for (const mofo_json *cs = cases ? cases->child : NULL; cs; cs = cs->next, n_cases++) {
        int prompt[64], want[64];
        int np = ids_of(mofo_json_get(cs, "prompt"), prompt, 64);
        int nw = ids_of(mofo_json_get(cs, "generated"), want, 64);
        CHECK(np > 0 && nw > 0, "%s case %d: prompt/generated", name, n_cases);
        for (int no_cache = 0; no_cache <= 1; no_cache++) {
            mofo_gen_opts o = {.max_new = nw, .temperature = 0, .top_p = 1, .eos = -1, .no_cache = no_cache};
            int *got = NULL, ng = 0;
            CHECK(mofo_generate(m, prompt, np, &o, &got, &ng, &err) == 0, "%s", err.msg);
            int same = ng == nw;
            for (int i = 0; same && i < nw; i++) same = got[i] == want[i];
            CHECK(same, "%s case %d (%s): %d ids, first %d (want %d)", name, n_cases,
                  no_cache ? "no cache" : "KV cache", ng, ng ? got[0] : -1, want[0]);
            free(got);
        }
        /* the cache's last-position logits after prompt + generated equal a full forward pass */
        int seq[128], T = 0;
        for (int i = 0; i < np; i++) seq[T++] = prompt[i];
        for (int i = 0; i < nw; i++) seq[T++] = want[i];
        mofo_infer s;
        CHECK(mofo_infer_init(&s, m, T, &err) == 0, "%s", err.msg);
        int ok = mofo_infer_feed(&s, m, seq, np, &err) == 0;
        for (int i = np; ok && i < T; i++) ok = mofo_infer_feed(&s, m, &seq[i], 1, &err) == 0;
        CHECK(ok, "%s", err.msg);
        CHECK(mofo_model_forward(m, seq, NULL, 1, T, NULL, &err) == 0, "%s", err.msg);
        double e = dev_rel_err(m, s.logits, m->a.logits + (size_t)(T - 1) * m->cfg.V, (size_t)m->cfg.V);
        /* measured: at most 8.0e-7 (llama-tiny), 2.5e-7..3.0e-7 (gpt2-tiny) */
        CHECK(e < 8e-6, "%s case %d: cache logits vs forward: rel err %g", name, n_cases, e);
        CHECK(mofo_infer_feed(&s, m, seq, 1, &err) != 0, "feeding past the cache must fail");
        /* one block: fed from position 0 in one call, the cache runs the training forward's
         * arithmetic, so every row's logits equal it bit for bit */
        float *rows = m->be->alloc((size_t)T * m->cfg.V); /* (T, V) */
        mofo_infer_reset(&s);
        CHECK(rows && mofo_infer_feed_rows(&s, m, seq, T, rows, &err) == 0, "%s", err.msg);
        CHECK(rows && dev_same_bits(m, rows, m->a.logits, (size_t)T * m->cfg.V),
              "%s case %d: the cache's logits fed at once differ in their bits from the forward's", name, n_cases);
        m->be->free(rows);
        mofo_infer_free(&s);
    }
    CHECK(n_cases == 3, "%s: %d cases", name, n_cases);
    mofo_json_free(doc);
    free(text);

    /* sampling: the same seed gives the same ids, cache or not; top_p near 0 keeps only the best */
    int prompt[3] = {1, 2, 3};
    int *a = NULL, *b = NULL, *c = NULL, *g = NULL, na = 0, nb = 0, nc = 0, ngr = 0;
    mofo_gen_opts o = {.max_new = 12, .temperature = 1.0, .top_p = 0.9, .seed = 42, .eos = -1};
    CHECK(mofo_generate(m, prompt, 3, &o, &a, &na, &err) == 0, "%s", err.msg);
    o.no_cache = 1;
    CHECK(mofo_generate(m, prompt, 3, &o, &b, &nb, &err) == 0, "%s", err.msg);
    CHECK(na == 12 && nb == 12 && a && b && memcmp(a, b, sizeof(int) * 12) == 0, "%s: seeded sampling differs", name);
    o.no_cache = 0;
    o.top_p = 1e-9;
    CHECK(mofo_generate(m, prompt, 3, &o, &c, &nc, &err) == 0, "%s", err.msg);
    o.temperature = 0;
    CHECK(mofo_generate(m, prompt, 3, &o, &g, &ngr, &err) == 0, "%s", err.msg);
    CHECK(nc == 12 && ngr == 12 && c && g && memcmp(c, g, sizeof(int) * 12) == 0, "%s: top_p ~0 is not greedy", name);
    /* EOS stops and is included */
    o.eos = g ? g[2] : 0;
    int *e = NULL, ne = 0;
    CHECK(mofo_generate(m, prompt, 3, &o, &e, &ne, &err) == 0, "%s", err.msg);
    int first = 0;
    while (g && first < 12 && g[first] != o.eos) first++;
    CHECK(ne == first + 1 && e && e[ne - 1] == o.eos, "%s: EOS stop after %d ids (want %d)", name, ne, first + 1);
    free(a);
    free(b);
    free(c);
    free(g);
    free(e);
    mofo_model_free(m);
}

/* a sliding window (Mistral): the cache's logits at every step equal a full forward pass's */
static void check_window(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/llama-tiny", MOFO_FIXTURES);
    mofo_err err = {0};
    mofo_model *m = NULL;
    CHECK(mofo_model_load(&m, dir, &err) == 0, "%s", err.msg);
    CHECK(!m || mofo_model_to_device(m, TEST_DEVICE, &err) == 0, "%s", err.msg);
    if (!m) return;
    m->cfg.sliding_window = 3;
    int seq[12] = {5, 17, 99, 3, 150, 42, 7, 7, 81, 120, 64, 2};
    mofo_infer s;
    CHECK(mofo_infer_init(&s, m, 12, &err) == 0, "%s", err.msg);
    CHECK(mofo_infer_feed(&s, m, seq, 4, &err) == 0, "%s", err.msg);
    double worst = 0;
    for (int T = 4; T <= 12; T++) {
        if (T > 4) CHECK(mofo_infer_feed(&s, m, &seq[T - 1], 1, &err) == 0, "%s", err.msg);
        CHECK(mofo_model_eval(m, seq, NULL, 1, T, NULL, &err) == 0, "%s", err.msg);
        double e = dev_rel_err(m, s.logits, m->a.logits + (size_t)(T - 1) * m->cfg.V, (size_t)m->cfg.V);
        if (e > worst) worst = e;
    }
    /* measured: 5.2e-7 */
    CHECK(worst < 5e-6, "sliding window 3: cache vs forward rel err %g", worst);
    mofo_infer_free(&s);
    mofo_model_free(m);
}

int main(void) {
    check_model("gpt2-tiny");
    check_model("llama-tiny");
    check_window();
    /* sampling statistics on fixed logits: top-p keeps the smallest set reaching p */
    float lg[4] = {0.0f, 1.0f, 2.0f, 3.0f}; /* probs ~ 0.032 0.087 0.237 0.644 */
    uint64_t rng = 7;
    int counts[4] = {0};
    for (int i = 0; i < 4000; i++) counts[mofo_sample(lg, 4, 1.0, 0.8, &rng)]++;
    CHECK(counts[0] == 0 && counts[1] == 0 && counts[2] > 800 && counts[3] > 2400, "top-p 0.8: %d %d %d %d",
          counts[0], counts[1], counts[2], counts[3]);
    CHECK(mofo_sample(lg, 4, 0.0, 1.0, &rng) == 3, "greedy");
    test_device_close();
    return CHECK_DONE();
}
