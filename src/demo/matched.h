/* Forgetting compared at matched task accuracy: each method's runs (several learning rates, one seed)
 * form a curve of task accuracy against knowledge kept, and every curve is read at one task
 * accuracy that all of them reach, so that no method wins by learning less (the comparison of
 * "LoRA Learns Less and Forgets Less", Biderman et al. 2024).
 *
 * Reading a curve at a level: the runs' points with the base model added as the curve's start (a
 * learning rate of 0 leaves the base), reduced to their Pareto frontier (a run that another run, or
 * the base, beats in both task accuracy and knowledge is dropped: a rate too high for the steps
 * loses on both); the knowledge at the level is linearly interpolated between the nearest frontier
 * point at or below it and the nearest at or above it. A level above every point of a curve is not
 * reached (NaN). */
#ifndef MOFO_DEMO_MATCHED_H
#define MOFO_DEMO_MATCHED_H

typedef struct mofo_demo_point {
    double task, knowledge; /* fractions in [0, 1] */
} mofo_demo_point;

/* The knowledge at task accuracy level along pts[0..n) started at base; NaN if no point reaches it. */
double mofo_demo_knowledge_at(const mofo_demo_point *pts, int n, mofo_demo_point base, double level);

/* The level of the comparison: the highest task accuracy every curve reaches (the least of the
 * curves' best), rounded down to a multiple of step when that stays above base_task (step 0: no
 * rounding). best[0..n) holds each curve's best task accuracy. */
double mofo_demo_matched_level(const double *best, int n, double base_task, double step);

/* Mean and sample standard deviation (n - 1; NaN for n < 2) of x[0..n). */
void mofo_demo_mean_sd(const double *x, int n, double *mean, double *sd);

#endif
