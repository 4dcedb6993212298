/* The library-level training step: forward, backward, one libmofo step. */
#include <math.h>

#include "model.h"
#include "mofo/optim.h"

int mofo_model_register(mofo_model *m, mofo_optim *opt, mofo_err *err) {
    int rc = mofo_model_alloc_grads(m, err);
    for (int i = 0; i < m->n_p && rc == 0; i++) {
        const mofo_param *p = &m->p[i];
        /* the in-memory shape: (OC, C) for matrices, so row blocks are output rows (e.g. heads) */
        int r = mofo_optim_add_param(opt, p->name, m->params + p->offset, m->grads + p->offset, p->ndim, p->shape,
                                     MOFO_GROUP_AUTO, err);
        if (r < 0) rc = r;
    }
    return rc;
}

int mofo_model_train_step(mofo_model *m, mofo_optim *opt, const int *inputs, const int *targets, int B, int T,
                          double lr, float *loss, mofo_err *err) {
    if (!targets) return mofo_errf(err, MOFO_EINVAL, "a training step needs targets");
    int rc = mofo_model_alloc_grads(m, err);
    if (rc) return rc;
    mofo_model_zero_grads(m);
    float l = NAN;
    if ((rc = mofo_model_forward(m, inputs, targets, B, T, &l, err))) return rc;
    if (loss) *loss = l;
    if ((rc = mofo_model_backward(m, inputs, targets, err))) return rc;
    return mofo_optim_step(opt, lr, err);
}
