/* Full fine-tuning with a pull toward the pre-trained weights theta0 added to the loss (the
 * paper's L1 and L2 regularisation baselines):
 *   l1: reg sum |theta - theta0|, gradient reg sign(theta - theta0) (0 where equal)
 *   l2: reg sum (theta - theta0)^2, gradient 2 reg (theta - theta0) */
#include "train/method.h"

static double l1_pull(const mofo_backend *be, double reg, const float *theta, const float *theta0, float *g,
                      int64_t n) {
    return be->penalty_grad(MOFO_PENALTY_L1, reg, theta, theta0, g, n);
}

static double l2_pull(const mofo_backend *be, double reg, const float *theta, const float *theta0, float *g,
                      int64_t n) {
    return be->penalty_grad(MOFO_PENALTY_L2, reg, theta, theta0, g, n);
}

const mofo_method_def MOFO_METHOD_DEF_L1 = {
    .name = "l1",
    .help = "full fine-tuning + reg * sum |theta - theta0| (needs reg > 0)",
    .needs_reg = true,
    .grad_hook = l1_pull,
};

const mofo_method_def MOFO_METHOD_DEF_L2 = {
    .name = "l2",
    .help = "full fine-tuning + reg * sum (theta - theta0)^2 (needs reg > 0)",
    .needs_reg = true,
    .grad_hook = l2_pull,
};
