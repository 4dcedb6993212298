/* The registry of fine-tuning methods (method.h), in the order of mofo_method. */
#include "train/method.h"

#include <stdio.h>
#include <string.h>

static const mofo_method_def *const METHODS[MOFO_N_METHODS] = {
    [MOFO_METHOD_MOFO] = &MOFO_METHOD_DEF_MOFO,
    [MOFO_METHOD_ADAMW] = &MOFO_METHOD_DEF_ADAMW,
    [MOFO_METHOD_L1] = &MOFO_METHOD_DEF_L1,
    [MOFO_METHOD_L2] = &MOFO_METHOD_DEF_L2,
    [MOFO_METHOD_HFT] = &MOFO_METHOD_DEF_HFT,
    [MOFO_METHOD_LORA] = &MOFO_METHOD_DEF_LORA,
    [MOFO_METHOD_LORA_MOFO] = &MOFO_METHOD_DEF_LORA_MOFO,
};

const mofo_method_def *mofo_method_def_of(mofo_method m) { return METHODS[m]; }

int mofo_method_parse(const char *s, mofo_method *out) {
    for (int i = 0; i < MOFO_N_METHODS; i++)
        if (strcmp(s, METHODS[i]->name) == 0) return *out = (mofo_method)i, 0;
    return -1;
}

const char *mofo_method_name(mofo_method m) { return (unsigned)m < MOFO_N_METHODS ? METHODS[m]->name : "?"; }

const char *mofo_method_names(const char *sep) {
    static char buf[256]; /* the registry is constant: one text for each separator asked in turn */
    size_t n = 0;
    for (int i = 0; i < MOFO_N_METHODS && n < sizeof buf; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? sep : "", METHODS[i]->name);
    return buf;
}
