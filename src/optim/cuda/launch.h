/* The kernels' launchers, one per .cu file that defines them (host side, C++ linkage). Each launches
 * on the step's stream (a.stream) and returns without waiting. */
#ifndef MOFO_CUDA_LAUNCH_H
#define MOFO_CUDA_LAUNCH_H

#include "layout.h"

/* scan.cu: the read-only passes over the data. Level 0 (pass 1) checks every gradient, counts the
 * top digit of every filtered block of several chunks, and selects one-chunk blocks completely;
 * levels >= 1 count the pending entries of the blocks of several chunks that are not on the stash. */
void launch_scan(mofo_rule r, mofo_filter f, const step_args &a, int n_chunks, int level);
/* scan.cu: fixes `level` of the blocks of several chunks counted at that level (from the data, or
 * from the stash when from_stash). */
void launch_find(const step_args &a, const int *multi, int n_multi, int level, int from_stash);
/* scan.cu: the selection state of every block reset for a new step. */
void launch_reset(const step_args &a);
/* apply.cu: pass 2, the writes: moments, decay, moves, stash. */
void launch_apply(mofo_rule r, mofo_filter f, const step_args &a, int n_chunks);
/* stash.cu: the histogram of `level` over the stash, and the final moves of stashed entries. */
void launch_stash_hist(const step_args &a, const stash_tile *tiles, int n_tiles, int level);
void launch_stash_apply(const step_args &a, const stash_tile *tiles, int n_tiles);

/* Calls FN<R, F>(args...) for the step's rule and filter (FILTER_NONE has no filtered block and
 * takes the momentum instance). */
#define CUDA_DISPATCH(FN, rule, filter, ...)                                                               \
    do {                                                                                                   \
        switch ((rule) * 8 + ((filter) == MOFO_FILTER_NONE ? MOFO_FILTER_MOMENTUM : (filter))) {           \
        case MOFO_RULE_ADAMW * 8 + MOFO_FILTER_MOMENTUM: FN<MOFO_RULE_ADAMW, MOFO_FILTER_MOMENTUM>(__VA_ARGS__); break; \
        case MOFO_RULE_ADAMW * 8 + MOFO_FILTER_GRADIENT: FN<MOFO_RULE_ADAMW, MOFO_FILTER_GRADIENT>(__VA_ARGS__); break; \
        case MOFO_RULE_ADAMW * 8 + MOFO_FILTER_UPDATE: FN<MOFO_RULE_ADAMW, MOFO_FILTER_UPDATE>(__VA_ARGS__); break;     \
        case MOFO_RULE_ADAMW * 8 + MOFO_FILTER_RANDOM: FN<MOFO_RULE_ADAMW, MOFO_FILTER_RANDOM>(__VA_ARGS__); break;     \
        case MOFO_RULE_LION * 8 + MOFO_FILTER_MOMENTUM: FN<MOFO_RULE_LION, MOFO_FILTER_MOMENTUM>(__VA_ARGS__); break;   \
        case MOFO_RULE_LION * 8 + MOFO_FILTER_GRADIENT: FN<MOFO_RULE_LION, MOFO_FILTER_GRADIENT>(__VA_ARGS__); break;   \
        case MOFO_RULE_LION * 8 + MOFO_FILTER_UPDATE: FN<MOFO_RULE_LION, MOFO_FILTER_UPDATE>(__VA_ARGS__); break;       \
        case MOFO_RULE_LION * 8 + MOFO_FILTER_RANDOM: FN<MOFO_RULE_LION, MOFO_FILTER_RANDOM>(__VA_ARGS__); break;       \
        case MOFO_RULE_SGDM * 8 + MOFO_FILTER_MOMENTUM: FN<MOFO_RULE_SGDM, MOFO_FILTER_MOMENTUM>(__VA_ARGS__); break;   \
        case MOFO_RULE_SGDM * 8 + MOFO_FILTER_GRADIENT: FN<MOFO_RULE_SGDM, MOFO_FILTER_GRADIENT>(__VA_ARGS__); break;   \
        case MOFO_RULE_SGDM * 8 + MOFO_FILTER_UPDATE: FN<MOFO_RULE_SGDM, MOFO_FILTER_UPDATE>(__VA_ARGS__); break;       \
        default: FN<MOFO_RULE_SGDM, MOFO_FILTER_RANDOM>(__VA_ARGS__); break;                                           \
        }                                                                                                  \
    } while (0)

#endif
