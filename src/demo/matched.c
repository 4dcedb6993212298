/* matched.h: curves read at one task accuracy. */
#include "demo/matched.h"

#include <math.h>

/* 1 if q dominates p: at least as accurate and as knowledgeable, better in one */
static int dominates(mofo_demo_point q, mofo_demo_point p) {
    return q.task >= p.task && q.knowledge >= p.knowledge && (q.task > p.task || q.knowledge > p.knowledge);
}

double mofo_demo_knowledge_at(const mofo_demo_point *pts, int n, mofo_demo_point base, double level) {
    mofo_demo_point lo = {NAN, NAN}, hi = {NAN, NAN};
    for (int i = -1; i < n; i++) {
        mofo_demo_point p = i < 0 ? base : pts[i];
        if (!isfinite(p.task) || !isfinite(p.knowledge)) continue;
        int dominated = i >= 0 && dominates(base, p);
        for (int j = 0; j < n && !dominated; j++)
            dominated = j != i && isfinite(pts[j].task) && isfinite(pts[j].knowledge) && dominates(pts[j], p);
        if (dominated) continue; /* not on the frontier */
        if (p.task <= level && (isnan(lo.task) || p.task > lo.task)) lo = p;
        if (p.task >= level && (isnan(hi.task) || p.task < hi.task)) hi = p;
    }
    if (isnan(hi.task)) return NAN;          /* the curve never gets there */
    if (isnan(lo.task)) return hi.knowledge; /* below the base's own accuracy: the first point at or above */
    if (hi.task == lo.task) return hi.knowledge > lo.knowledge ? hi.knowledge : lo.knowledge;
    return lo.knowledge + (hi.knowledge - lo.knowledge) * (level - lo.task) / (hi.task - lo.task);
}

double mofo_demo_matched_level(const double *best, int n, double base_task, double step) {
    double level = INFINITY;
    for (int i = 0; i < n; i++)
        if (best[i] < level) level = best[i];
    if (n == 0 || !isfinite(level)) return NAN;
    if (step > 0) {
        double per = 1 / step, r = floor(level * per + 1e-9) / per; /* 6 / 20 is 0.3; 6 * 0.05 is not */
        if (r > base_task) level = r;
    }
    return level;
}

void mofo_demo_mean_sd(const double *x, int n, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = n ? s / n : NAN;
    for (int i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *sd = n > 1 ? sqrt(q / (n - 1)) : NAN;
}
