/* safetensors: round trip, dtype conversion, the reference fixture, and every malformed-file case. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "io/safetensors.h"

static char tmpdir[256];

static void test_round_trip(void) {
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    int32_t ids[3] = {5, -1, 7};
    mofo_st_writer *w = mofo_st_writer_new();
    mofo_err err = {0};
    CHECK(mofo_st_writer_add(w, "a", MOFO_DT_F32, 2, (int64_t[]){2, 3}, a, &err) == 0, "%s", err.msg);
    CHECK(mofo_st_writer_add(w, "ids", MOFO_DT_I32, 1, (int64_t[]){3}, ids, &err) == 0, "%s", err.msg);
    CHECK(mofo_st_writer_add(w, "a", MOFO_DT_F32, 1, (int64_t[]){1}, a, &err) == MOFO_EINVAL, "duplicate name refused");
    CHECK(mofo_st_writer_meta(w, "step", "12", &err) == 0, "%s", err.msg);
    char path[300];
    snprintf(path, sizeof path, "%s/rt.safetensors", tmpdir);
    CHECK(mofo_st_writer_save(w, path, &err) == 0, "%s", err.msg);
    mofo_st_writer_free(w);

    mofo_st_file *f = NULL;
    CHECK(mofo_st_open(&f, path, &err) == 0, "%s", err.msg);
    if (!f) return;
    CHECK(f->n_tensors == 2, "two tensors");
    const mofo_st_tensor *t = mofo_st_find(f, "a");
    CHECK(t && t->dtype == MOFO_DT_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3, "shape of a");
    float back[6];
    CHECK(t && mofo_st_to_f32(f, t, back, 6, &err) == 0 && memcmp(back, a, sizeof a) == 0, "data of a");
    t = mofo_st_find(f, "ids");
    CHECK(t && t->dtype == MOFO_DT_I32 && memcmp(t->data, ids, sizeof ids) == 0, "data of ids");
    CHECK(mofo_st_to_f32(f, t, back, 3, &err) == MOFO_EFORMAT && strstr(err.msg, "'ids'"), "I32 is not float");
    const char *step = mofo_st_meta_get(f, "step");
    CHECK(step && strcmp(step, "12") == 0, "metadata");
    /* the header is padded so that the data starts 8-byte aligned */
    CHECK(((const unsigned char *)f->tensors[0].data - (const unsigned char *)f->map) % 8 == 0, "aligned data");
    mofo_st_close(f);
}

static void test_half_types(void) {
    /* hand-derived: bf16 0x3FC0 = 1.5; 0xC2F7 = -123.5; f16 0x3C00 = 1; 0xC000 = -2; 0x0001 = 2^-24;
       0x7C00 = inf; 0x3555 = 0.333251953125 */
    uint16_t bf[2] = {0x3FC0, 0xC2F7}, h[5] = {0x3C00, 0xC000, 0x0001, 0x7C00, 0x3555};
    unsigned char buf[512];
    mofo_st_writer *w = mofo_st_writer_new();
    mofo_err err = {0};
    mofo_st_writer_add(w, "bf", MOFO_DT_BF16, 1, (int64_t[]){2}, bf, &err);
    mofo_st_writer_add(w, "h", MOFO_DT_F16, 1, (int64_t[]){5}, h, &err);
    char path[300];
    snprintf(path, sizeof path, "%s/half.safetensors", tmpdir);
    CHECK(mofo_st_writer_save(w, path, &err) == 0, "%s", err.msg);
    mofo_st_writer_free(w);
    (void)buf;
    mofo_st_file *f = NULL;
    CHECK(mofo_st_open(&f, path, &err) == 0, "%s", err.msg);
    if (!f) return;
    float out[5];
    CHECK(mofo_st_to_f32(f, mofo_st_find(f, "bf"), out, 2, &err) == 0, "%s", err.msg);
    CHECK(out[0] == 1.5f && out[1] == -123.5f, "bf16: %g %g", out[0], out[1]);
    CHECK(mofo_st_to_f32(f, mofo_st_find(f, "h"), out, 5, &err) == 0, "%s", err.msg);
    CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == ldexpf(1, -24) && isinf(out[3]) &&
              out[4] == 0.333251953125f, "f16: %g %g %g %g %g", out[0], out[1], out[2], out[3], out[4]);
    mofo_st_close(f);
}

static void test_fixture(void) {
    mofo_st_file *f = NULL;
    mofo_err err = {0};
    CHECK(mofo_st_open(&f, MOFO_FIXTURES "/optim/mofo.safetensors", &err) == 0, "%s", err.msg);
    if (!f) return;
    const mofo_st_tensor *t = mofo_st_find(f, "init/w1");
    CHECK(t && t->dtype == MOFO_DT_F32 && t->ndim == 2 && t->shape[0] == 64 && t->shape[1] == 48, "init/w1 is 64x48");
    CHECK(mofo_st_find(f, "grad4/small") != NULL, "grad4/small present");
    mofo_st_close(f);
}

/* builds "8-byte length + header + data" in buf, returns its length */
static size_t make_file(unsigned char *buf, const char *header, size_t data_len, int64_t claimed_len) {
    size_t h = strlen(header);
    uint64_t n = claimed_len >= 0 ? (uint64_t)claimed_len : h;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(n >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, 0, data_len);
    return 8 + h + data_len;
}

static void expect_bad(const char *header, size_t data_len, int64_t claimed, const char *needle) {
    unsigned char buf[1024];
    size_t n = make_file(buf, header, data_len, claimed);
    mofo_st_file *f = NULL;
    mofo_err err = {0};
    int rc = mofo_st_parse(&f, buf, n, "bad.safetensors", &err);
    CHECK(rc == MOFO_EFORMAT && f == NULL, "header %s should be refused", header);
    CHECK(strstr(err.msg, "bad.safetensors") && strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
}

static void test_bad_files(void) {
    mofo_st_file *f = NULL;
    mofo_err err = {0};
    CHECK(mofo_st_parse(&f, "abc", 3, "short.safetensors", &err) == MOFO_EFORMAT && strstr(err.msg, "truncated"),
          "%s", err.msg);
    expect_bad("{}", 0, 1000, "runs past the end");
    expect_bad("{\"a\":", 0, -1, "malformed JSON header");
    expect_bad("[1]", 0, -1, "not an object");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, -1, "'w': data_offsets [0, 16] outside");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 16, -1, "overlap");
    expect_bad("{\"w\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, -1, "'w': unknown dtype 'Q4'");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1, "'w': shape needs 12 bytes");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, -1, "'w': dimension 0");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, -1, "'w': data_offsets is not");
    expect_bad("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, -1, "outside");
    expect_bad("{\"__metadata__\":{\"a\":1}}", 0, -1, "not a string");
    CHECK(mofo_st_open(&f, "/nonexistent/x.safetensors", &err) == MOFO_EIO && strstr(err.msg, "/nonexistent/x.safetensors"),
          "%s", err.msg);
}

static void test_failed_write_keeps_old(void) {
    /* a save into a missing directory fails and names the path */
    float a[1] = {1};
    mofo_st_writer *w = mofo_st_writer_new();
    mofo_err err = {0};
    mofo_st_writer_add(w, "a", MOFO_DT_F32, 1, (int64_t[]){1}, a, &err);
    CHECK(mofo_st_writer_save(w, "/nonexistent-dir/x.safetensors", &err) == MOFO_EIO &&
              strstr(err.msg, "/nonexistent-dir/x.safetensors"), "%s", err.msg);
    mofo_st_writer_free(w);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mofo-test-st-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_round_trip();
    test_half_types();
    test_fixture();
    test_bad_files();
    test_failed_write_keeps_old();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return CHECK_DONE();
}
