/* mofo bench train --ranks N: the step time of N processes x 1 thread (mpirun mofo finetune, data
 * parallel with ZeRO stage 1) against 1 process x N threads (mofo finetune) on the same model and
 * global batch, side by side in one run, and the bytes each process sends per step. A random model
 * of the preset shape and rows of random ids are written to a temporary folder; both runs are
 * the real fine-tuning path, timed by it (ms per step after the first, which warms up). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_train_ranks.h"
#include "model/model.h"

/* Runs cmd; the value after `key` in its output (NAN when missing). */
static double run_and_read(const char *cmd, const char *key, const char *key2, double *second) {
    FILE *p = popen(cmd, "r");
    double v = -1;
    *second = -1;
    char line[1024];
    while (p && fgets(line, sizeof line, p)) {
        char *at = strstr(line, key);
        if (at) v = strtod(line, NULL);
        at = key2 ? strstr(line, key2) : NULL;
        if (at) *second = strtod(at + strlen(key2), NULL);
    }
    int rc = p ? pclose(p) : -1;
    return rc == 0 ? v : -1;
}

int bench_train_ranks(const mofo_model_config *cfg, const char *method, int B, int T, int steps, int ranks, int json) {
    char dir[] = "/tmp/mofo-bench-ranks-XXXXXX", self[4096], cmd[12000];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || !mkdtemp(dir)) {
        fprintf(stderr, "mofo bench train: cannot find this program or make a temporary folder\n");
        return 1;
    }
    self[n] = 0;
    mofo_err err = {0};
    mofo_model *m = NULL;
    int rc = mofo_model_create(&m, cfg, 1, 0.02f, &err);
    if (!rc) rc = mofo_model_save(m, dir, 0, &err);
    mofo_model_free(m);
    snprintf(cmd, sizeof cmd, "%s/data.jsonl", dir);
    FILE *f = rc ? NULL : fopen(cmd, "w");
    if (!f) {
        fprintf(stderr, "mofo bench train: %s\n", rc ? err.msg : "cannot write the data");
        return 1;
    }
    uint64_t r = 88172645463325252ull;
    for (int row = 0; row < B * (steps + 1); row++) { /* one epoch covers every step */
        fputs("{\"input_ids\": [", f);
        for (int i = 0; i <= T; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            fprintf(f, "%s%d", i ? ", " : "", (int)(r % (uint64_t)cfg->V));
        }
        fputs("]}\n", f);
    }
    fclose(f);
    const char *flags = "--steps %d --batch %d --seq-len %d --method %s --lr 1e-4 --no-shuffle";
    char common[512];
    snprintf(common, sizeof common, flags, steps + 1, B, T + 1, method);
    double one_ms, one_sent, many_ms, many_sent;
    snprintf(cmd, sizeof cmd, "%s finetune --model %s --data %s/data.jsonl --out %s/one --threads %d %s 2>/dev/null",
             self, dir, dir, dir, ranks, common);
    one_ms = run_and_read(cmd, "ms per step after the first", NULL, &one_sent);
    snprintf(cmd, sizeof cmd, "mpirun -np %d --oversubscribe %s %s finetune --model %s --data %s/data.jsonl --out %s/many "
             "--threads 1 %s 2>/dev/null", ranks, getuid() == 0 ? "--allow-run-as-root" : "", self, dir, dir, dir, common);
    many_ms = run_and_read(cmd, "ms per step after the first", "each process sent ", &many_sent);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "mofo bench train: could not remove %s\n", dir);
    if (one_ms < 0 || many_ms < 0) {
        fprintf(stderr, "mofo bench train: a run failed (%s); is mofo built with MPI and mpirun installed?\n",
                one_ms < 0 ? "1 process" : "mpirun");
        return 1;
    }
    if (json)
        printf("{\"ranks\": %d, \"batch\": %d, \"seq\": %d, \"method\": \"%s\", \"one_process_ms\": %.1f, "
               "\"ranks_ms\": %.1f, \"mb_sent_per_step_per_rank\": %.3f}\n",
               ranks, B, T, method, one_ms, many_ms, many_sent);
    else
        printf("| layout | ms per step | vs 1 process | MB sent per step per process |\n|---|---|---|---|\n"
               "| 1 process x %d threads | %.1f | 1.00x | 0 |\n| %d processes x 1 thread | %.1f | %.2fx | %.3f |\n",
               ranks, one_ms, ranks, many_ms, many_ms / one_ms, many_sent);
    return 0;
}
