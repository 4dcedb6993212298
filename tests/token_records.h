/* The batches of a fixture's reference trajectory (tests/fixtures/MODEL/traj.safetensors) as a
 * JSONL data set of token records ({"input_ids": [...]} per row), for tests that train on them. */
#ifndef MOFO_TEST_TOKEN_RECORDS_H
#define MOFO_TEST_TOKEN_RECORDS_H

#include <stdint.h>
#include <stdio.h>

#include "check.h"
#include "io/safetensors.h"

static inline void write_token_records(const char *model, const char *path) {
    char p[512];
    mofo_err err = {0};
    snprintf(p, sizeof p, "%s/%s/traj.safetensors", MOFO_FIXTURES, model);
    mofo_st_file *f = NULL;
    CHECK(mofo_st_open(&f, p, &err) == 0, "%s", err.msg);
    const mofo_st_tensor *bt = f ? mofo_st_find(f, "batches") : NULL;
    FILE *o = fopen(path, "w");
    CHECK(bt && o, "%s: batches; %s: writable", p, path);
    if (bt && o) {
        const int32_t *ids = bt->data;
        int64_t rows = bt->shape[0] * bt->shape[1], T = bt->shape[2];
        for (int64_t r = 0; r < rows; r++) {
            fputs("{\"input_ids\": [", o);
            for (int64_t t = 0; t < T; t++) fprintf(o, "%s%d", t ? ", " : "", ids[r * T + t]);
            fputs("]}\n", o);
        }
    }
    if (o) fclose(o);
    mofo_st_close(f);
}

#endif
