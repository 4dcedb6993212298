/* A model moved to the engine's CUDA backend (on the simulator) and back, and one loaded straight onto
 * it (the same bits). Saved from the device, the
 * checkpoint equals the CPU's byte for byte (gpt2-tiny: its Conv1D weights are transposed on the
 * way out); moved back, the parameters keep their bits; a model with adapters refuses to move; a
 * kernel's failure (a head size the attention kernel does not take) reaches the caller of the
 * forward as MOFO_EDEVICE naming it. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "device.h"
#include "model/block.h"
#include "text/utf8.h" /* mofo_read_file */

static int same_file(const char *a, const char *b) {
    char *ta = NULL, *tb = NULL;
    size_t la = 0, lb = 0;
    int same = mofo_read_file(a, &ta, &la, NULL) == 0 && mofo_read_file(b, &tb, &lb, NULL) == 0 && la == lb &&
               memcmp(ta, tb, la) == 0;
    free(ta);
    free(tb);
    return same;
}

static void check_save_and_back(const char *name) {
    char dir[512], tmp[] = "/tmp/mofo-device-XXXXXX", out_cpu[600], out_dev[600], a[700], b[700];
    snprintf(dir, sizeof dir, "%s/%s", MOFO_FIXTURES, name);
    mofo_err err = {0};
    mofo_model *cpu = NULL, *dev = NULL;
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp %s", tmp);
    CHECK(mofo_model_load(&cpu, dir, &err) == 0 && mofo_model_load(&dev, dir, &err) == 0, "%s", err.msg);
    if (!cpu || !dev) goto out;
    CHECK(mofo_model_to_device(dev, MOFO_DEVICE_CUDA, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_device(dev) == MOFO_DEVICE_CUDA && strcmp(dev->be->name, "cuda") == 0, "%s on cuda", name);
    /* loaded straight to the device, a tensor at a time: the same bits as loaded, then moved */
    mofo_model *direct = NULL;
    CHECK(mofo_model_load_to(&direct, dir, MOFO_DEVICE_CUDA, &err) == 0, "%s", err.msg);
    if (direct) {
        float *x = test_host_copy(direct, direct->params, direct->n_floats), *y = test_host_copy(dev, dev->params, dev->n_floats);
        CHECK(mofo_model_device(direct) == MOFO_DEVICE_CUDA && x && y &&
                  memcmp(x, y, dev->n_floats * sizeof *x) == 0,
              "%s: loaded onto the device, the parameters differ from the moved model's", name);
        free(x), free(y);
        mofo_model_free(direct);
    }
    snprintf(out_cpu, sizeof out_cpu, "%s/cpu", tmp);
    snprintf(out_dev, sizeof out_dev, "%s/cuda", tmp);
    CHECK(mofo_model_save(cpu, out_cpu, 0, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_save(dev, out_dev, 0, &err) == 0, "%s", err.msg);
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", out_cpu, files[i]);
        snprintf(b, sizeof b, "%s/%s", out_dev, files[i]);
        CHECK(same_file(a, b), "%s: %s saved from the device differs from the CPU's", name, files[i]);
        unlink(a);
        unlink(b);
    }
    rmdir(out_cpu);
    rmdir(out_dev);
    rmdir(tmp);
    /* back to the host: the same bits */
    CHECK(mofo_model_to_device(dev, MOFO_DEVICE_CPU, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_device(dev) == MOFO_DEVICE_CPU &&
              memcmp(dev->params, cpu->params, cpu->n_floats * sizeof *cpu->params) == 0,
          "%s: parameters changed on the way to the device and back", name);
    /* adapters point into the backend's memory: they attach after the move, not before */
    mofo_adapter ad = {.layer = 0};
    CHECK(mofo_model_set_adapters(dev, &ad, 1, 0, &err) == 0, "%s", err.msg);
    CHECK(mofo_model_to_device(dev, MOFO_DEVICE_CUDA, &err) == MOFO_EINVAL && strstr(err.msg, "adapters") &&
              mofo_model_device(dev) == MOFO_DEVICE_CPU,
          "%s: a model with adapters moved (%s)", name, err.msg);
out:
    mofo_model_free(cpu);
    mofo_model_free(dev);
}

/* last: the backend's failure is sticky for the rest of the process, as CUDA's */
static void check_kernel_failure(void) {
    static const char cfg_json[] =
        "{\"model_type\": \"gpt2\", \"n_embd\": 300, \"n_head\": 1, \"n_layer\": 1, \"vocab_size\": 16, "
        "\"n_positions\": 8}";
    mofo_model_config cfg;
    mofo_err err = {0};
    mofo_model *m = NULL;
    CHECK(mofo_config_parse(&cfg, cfg_json, strlen(cfg_json), "config", &err) == 0, "%s", err.msg);
    CHECK(mofo_model_create(&m, &cfg, 1, 0.02f, &err) == 0, "%s", err.msg);
    if (!m) return;
    CHECK(mofo_model_to_device(m, MOFO_DEVICE_CUDA, &err) == 0, "%s", err.msg);
    int ids[4] = {1, 2, 3, 4}, tg[4] = {2, 3, 4, -100};
    float loss = 0;
    int rc = mofo_model_forward(m, ids, tg, 1, 4, &loss, &err);
    CHECK(rc == MOFO_EDEVICE && strstr(err.msg, "head size 300"), "head size 300: rc %d, '%s'", rc, err.msg);
    mofo_model_free(m);
}

int main(void) {
    check_save_and_back("gpt2-tiny");
    check_save_and_back("llama-tiny-bf16");
    check_kernel_failure();
    test_device_close();
    return CHECK_DONE();
}
