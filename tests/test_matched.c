/* The matched-accuracy read-out of mofo demo (src/demo/matched.c, mofo_demo_match in report.c) on
 * hand-made curves whose answers are worked out by hand below. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "demo/matched.h"
#include "demo/report.h"

#define NEAR(a, b) (fabs((a) - (b)) < 1e-12)

static void test_curve(void) {
    /* base (0, 0.9); runs (0.4, 0.8) and (0.8, 0.5), given out of order */
    const mofo_demo_point base = {0, 0.9}, pts[] = {{0.8, 0.5}, {0.4, 0.8}};
    /* 0.6: halfway from (0.4, 0.8) to (0.8, 0.5): 0.8 - 0.3 / 2 = 0.65 */
    CHECK(NEAR(mofo_demo_knowledge_at(pts, 2, base, 0.6), 0.65), "%.17g", mofo_demo_knowledge_at(pts, 2, base, 0.6));
    /* 0.2: halfway from the base to (0.4, 0.8): 0.85 */
    CHECK(NEAR(mofo_demo_knowledge_at(pts, 2, base, 0.2), 0.85), "%.17g", mofo_demo_knowledge_at(pts, 2, base, 0.2));
    CHECK(NEAR(mofo_demo_knowledge_at(pts, 2, base, 0.8), 0.5), "a run's own accuracy gives its knowledge");
    CHECK(NEAR(mofo_demo_knowledge_at(pts, 2, base, 0.0), 0.9), "the base's accuracy gives the base");
    CHECK(isnan(mofo_demo_knowledge_at(pts, 2, base, 0.81)), "beyond the best run: not reached");
    /* two runs at one accuracy: the one that kept more (the frontier); a NaN run is skipped */
    const mofo_demo_point tie[] = {{0.5, 0.6}, {0.5, 0.7}, {NAN, 0.99}, {1.0, 0.1}};
    CHECK(NEAR(mofo_demo_knowledge_at(tie, 4, base, 0.5), 0.7), "tie: %.17g", mofo_demo_knowledge_at(tie, 4, base, 0.5));
    /* 0.75: from (0.5, 0.7) to (1.0, 0.1): 0.7 - 0.6 * 0.5 = 0.4 */
    CHECK(NEAR(mofo_demo_knowledge_at(tie, 4, base, 0.75), 0.4), "%.17g", mofo_demo_knowledge_at(tie, 4, base, 0.75));
    /* a rate too high: (0.645, 0.224) is beaten on both by (0.67, 0.545) and leaves the frontier, so
     * 0.65 reads from the base (0.01, 0.598) to (0.67, 0.545): 0.598 - 0.053 * 0.64 / 0.66 */
    const mofo_demo_point hot[] = {{0.645, 0.224}, {0.67, 0.545}}, b2 = {0.01, 0.598};
    CHECK(NEAR(mofo_demo_knowledge_at(hot, 2, b2, 0.65), 0.598 - 0.053 * 0.64 / 0.66), "%.17g",
          mofo_demo_knowledge_at(hot, 2, b2, 0.65));
    /* a run the base beats on both (no task learned, knowledge lost) is off the frontier too */
    const mofo_demo_point flat[] = {{0.005, 0.5}, {0.5, 0.4}};
    CHECK(NEAR(mofo_demo_knowledge_at(flat, 2, b2, 0.255), 0.598 - 0.198 * 0.245 / 0.49), "%.17g",
          mofo_demo_knowledge_at(flat, 2, b2, 0.255));
}

static void test_level(void) {
    const double best[] = {0.83, 0.77, 0.91};
    CHECK(NEAR(mofo_demo_matched_level(best, 3, 0.0, 0.05), 0.75), "the least best 0.77 rounds down to 0.75");
    CHECK(NEAR(mofo_demo_matched_level(best, 3, 0.0, 0), 0.77), "no rounding");
    CHECK(NEAR(mofo_demo_matched_level(best, 3, 0.76, 0.05), 0.77), "rounding below the base's accuracy is not taken");
    CHECK(isnan(mofo_demo_matched_level(best, 0, 0, 0.05)), "no curves");
    double m, sd;
    const double x[] = {0.7, 0.8, 0.9};
    mofo_demo_mean_sd(x, 3, &m, &sd);
    CHECK(NEAR(m, 0.8) && NEAR(sd, 0.1), "mean %.17g sd %.17g (want 0.8, 0.1)", m, sd);
    mofo_demo_mean_sd(x, 1, &m, &sd);
    CHECK(NEAR(m, 0.7) && isnan(sd), "one value: its mean, no sd");
}

/* A report of two methods: "a" with seeds 1 and 2, "b" with seed 1; base (0, 0.9). */
static void test_report(void) {
    mofo_demo_run runs[5];
    memset(runs, 0, sizeof runs);
    const struct {
        const char *name;
        int seed;
        double task, know;
    } R[5] = {{"a", 1, 0.5, 0.7}, {"a", 1, 0.9, 0.3}, {"a", 2, 0.6, 0.6}, {"a", 2, 0.8, 0.4}, {"b", 1, 0.72, 0.5}};
    for (int i = 0; i < 5; i++) {
        snprintf(runs[i].name, sizeof runs[i].name, "%s", R[i].name);
        runs[i].seed = R[i].seed, runs[i].s.task_acc = R[i].task, runs[i].s.knowledge_acc = R[i].know;
    }
    mofo_demo_report r = {.runs = runs, .n_runs = 5};
    r.base.task_acc = 0, r.base.knowledge_acc = 0.9;
    mofo_err err = {0};
    CHECK(mofo_demo_match(&r, &err) == 0, "%s", err.msg);
    /* bests 0.9, 0.8, 0.72: the level is 0.72 rounded down to 0.70 */
    CHECK(NEAR(r.level, 0.70), "level %.17g", r.level);
    CHECK(r.n_matched == 2 && strcmp(r.matched[0].name, "a") == 0 && strcmp(r.matched[1].name, "b") == 0,
          "%d names", r.n_matched);
    if (r.n_matched == 2) {
        /* a, seed 1: (0.5, 0.7) to (0.9, 0.3) at 0.7: 0.7 - 0.4 * 0.5 = 0.5; seed 2: (0.6, 0.6) to
         * (0.8, 0.4): 0.5. b: from the base (0, 0.9) to (0.72, 0.5): 0.9 - 0.4 * 0.7 / 0.72 */
        CHECK(r.matched[0].n_seeds == 2 && NEAR(r.matched[0].per_seed[0], 0.5) && NEAR(r.matched[0].per_seed[1], 0.5),
              "a: %d seeds, %.17g %.17g", r.matched[0].n_seeds, r.matched[0].per_seed[0], r.matched[0].per_seed[1]);
        CHECK(NEAR(r.matched[0].knowledge, 0.5) && NEAR(r.matched[0].sd, 0), "a: %.17g sd %.17g", r.matched[0].knowledge,
              r.matched[0].sd);
        CHECK(r.matched[1].n_seeds == 1 && NEAR(r.matched[1].knowledge, 0.9 - 0.4 * 0.7 / 0.72) && isnan(r.matched[1].sd),
              "b: %.17g", r.matched[1].knowledge);
    }
    if (r.n_matched == 2) {
        /* the other levels: a at 70% as above; at 90% its seed 2 (best 0.8) does not get there; b at
         * 10%: from the base to (0.72, 0.5), 0.9 - 0.4 * 0.1 / 0.72 */
        CHECK(NEAR(r.matched[0].at[6], 0.5) && isnan(r.matched[0].at[8]), "a at 70%%: %.17g, at 90%%: %.17g",
              r.matched[0].at[6], r.matched[0].at[8]);
        CHECK(NEAR(r.matched[1].at[0], 0.9 - 0.4 * 0.1 / 0.72) && isnan(r.matched[1].at[7]), "b at 10%%: %.17g",
              r.matched[1].at[0]);
    }
    free(r.matched);
}

int main(void) {
    test_curve();
    test_level();
    test_report();
    return CHECK_DONE();
}
