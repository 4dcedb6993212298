/* Wall-clock timing for the commands and benchmarks. */
#ifndef MOFO_CLI_TIMING_H
#define MOFO_CLI_TIMING_H

/* Seconds on the monotonic clock. */
double cli_now(void);
/* The median of x[0..n) (n >= 1); x is sorted in place. */
double cli_median(double *x, int n);

#endif
