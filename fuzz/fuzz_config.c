/* libFuzzer: config.json on arbitrary bytes: the parser, the size checks and, for a config it
 * accepts, the parameter table (without allocating the weights, so a 7B shape costs nothing); the
 * JSON text it writes back must parse to the same shape. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mofo_err err = {0};
    mofo_model_config c;
    if (mofo_config_parse(&c, (const char *)data, size, "fuzz", &err) != 0) return 0;
    mofo_param *p = NULL;
    int n = 0;
    size_t floats = 0;
    if (mofo_model_param_table(&c, &p, &n, &floats, &err) == 0) free(p);
    char *json = mofo_config_to_json(&c);
    if (json) {
        mofo_model_config back;
        if (mofo_config_parse(&back, json, strlen(json), "fuzz round trip", &err) != 0 || back.V != c.V ||
            back.C != c.C || back.L != c.L || back.NH != c.NH || back.NKV != c.NKV || back.HD != c.HD || back.FF != c.FF)
            abort(); /* a config we accept must survive its own round trip */
        free(json);
    }
    return 0;
}
