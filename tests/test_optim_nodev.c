/* The device option everywhere: "device" parses (and a bad value is named); a CUDA optimizer is
 * created when this build has CUDA and the machine a device, and otherwise creation fails cleanly
 * with MOFO_ENODEV and a message that says why; bf16 parameters are refused on the CPU. */
#include <string.h>

#include "check.h"
#include "mofo/optim.h"

int main(void) {
    mofo_options o;
    mofo_err err = {0};
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    CHECK(o.device == MOFO_DEVICE_CPU, "the default device is the CPU");
    CHECK(mofo_options_set(&o, "device", "cuda", &err) == 0 && o.device == MOFO_DEVICE_CUDA, "%s", err.msg);
    CHECK(mofo_options_set(&o, "device", "tpu", &err) == MOFO_EINVAL && strstr(err.msg, "device") && strstr(err.msg, "tpu"),
          "bad device: %s", err.msg);
    CHECK(mofo_options_set(&o, "stochastic_rounding", "1", &err) == 0 && o.stochastic_rounding == 1, "%s", err.msg);
    CHECK(strcmp(mofo_device_name(MOFO_DEVICE_CUDA), "cuda") == 0, "device name");

    mofo_optim *opt = mofo_optim_create(&o, &err);
    if (opt) {
        printf("a CUDA device is present: the optimizer was created\n");
        mofo_optim_destroy(opt);
    } else {
        CHECK(err.code == MOFO_ENODEV, "code %d: %s", err.code, err.msg);
        CHECK(strstr(err.msg, "cuda") != NULL, "the message names the device: %s", err.msg);
#ifdef MOFO_HAVE_CUDA
        CHECK(strstr(err.msg, "no CUDA device") != NULL, "built with CUDA, so the device is missing: %s", err.msg);
#else
        CHECK(strstr(err.msg, "built without CUDA") != NULL, "built without CUDA: %s", err.msg);
#endif
        printf("no CUDA here, as expected: %s\n", err.msg);
        CHECK(strcmp(mofo_strstatus(MOFO_ENODEV), "no device") == 0, "status name");
    }

    /* bf16 parameters need the CUDA device */
    mofo_options_init(&o, MOFO_RULE_ADAMW);
    opt = mofo_optim_create(&o, &err);
    uint16_t w[4] = {0}, g[4] = {0};
    CHECK(mofo_optim_add_param_bf16(opt, "w", w, g, 1, (int64_t[]){4}, MOFO_GROUP_AUTO, &err) == MOFO_EINVAL &&
              strstr(err.msg, "'w'") && strstr(err.msg, "cuda"),
          "bf16 on the CPU: %s", err.msg);
    mofo_optim_destroy(opt);
    return CHECK_DONE();
}
