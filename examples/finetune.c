/* A fine-tune through libmofo-engine's public API alone (include/mofo/engine.h), as a program
 * outside the project would write it:
 *
 *     cc finetune.c $(pkg-config --cflags --libs mofo-engine) -o finetune
 *     ./finetune MODEL_DIR DATA.jsonl OUT_DIR [STEPS]
 *
 * It trains STEPS (default 2) MoFO steps on DATA, saves the model into OUT_DIR, loads it back and
 * prints the loss of a probe sequence before and after. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <mofo/engine.h>

static int fail(const mofo_err *err) {
    fprintf(stderr, "finetune: %s\n", err->msg);
    return 1;
}

/* The loss of the model in dir on one (1, T) sequence. */
static int loss_of(const char *dir, const int *ids, const int *targets, int T, float *loss, mofo_err *err) {
    mofo_model *m;
    if (mofo_model_load(&m, dir, err)) return -1;
    int rc = mofo_model_eval(m, ids, targets, 1, T, loss, err);
    mofo_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL_DIR DATA.jsonl OUT_DIR [STEPS]\n", argv[0]);
        return 2;
    }
    if (mofo_train_opts_size() != sizeof(mofo_train_opts)) {
        fprintf(stderr, "finetune: compiled against another version of mofo/engine.h\n");
        return 1;
    }
    mofo_err err = {0};
    mofo_train_opts o;
    mofo_train_opts_init(&o);
    o.model_dir = argv[1];
    o.data_path = argv[2];
    o.method = MOFO_METHOD_MOFO;
    o.lr = 1e-3;
    o.batch = 4;
    o.seq_len = 32;
    o.steps = argc > 4 ? atoi(argv[4]) : 2;

    mofo_trainer *t;
    if (mofo_trainer_create(&t, &o, &err)) return fail(&err);
    mofo_model_info info;
    mofo_model_get_info(mofo_trainer_model(t), &info);
    printf("%s: %d layers, %d channels, vocabulary %d, %lld parameters\n", info.model_type, info.layers,
           info.channels, info.vocab, (long long)info.n_params);
    for (int64_t s = 0; s < mofo_trainer_total_steps(t); s++) {
        mofo_step_metrics mt;
        if (mofo_trainer_step(t, &mt, &err)) {
            mofo_trainer_free(t);
            return fail(&err);
        }
        printf("step %lld: loss %.4f, %.1f%% of the entries moved\n", (long long)mt.step, mt.loss,
               100 * mt.updated_frac);
    }
    int rc = mofo_trainer_save_final(t, argv[3], &err);
    mofo_trainer_free(t);
    if (rc) return fail(&err);

    /* the saved model loads back and has learned: a fixed sequence of the first token ids */
    enum { T = 16 };
    int ids[T], targets[T];
    for (int i = 0; i < T; i++) ids[i] = i % info.vocab, targets[i] = (i + 1) % info.vocab;
    float before, after;
    if (loss_of(argv[1], ids, targets, T, &before, &err) || loss_of(argv[3], ids, targets, T, &after, &err))
        return fail(&err);
    printf("saved to %s; loss on a probe sequence %.4f before, %.4f after\n", argv[3], before, after);
    return isfinite(after) && after != before ? 0 : 1;
}
