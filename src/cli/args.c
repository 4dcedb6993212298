#include "args.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const arg_spec *find(const arg_spec *specs, int n, const char *name, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0) return &specs[i];
    return NULL;
}

static int set_value(const char *cmd, const arg_spec *s, const char *v) {
    char *end;
    errno = 0;
    switch (s->kind) {
    case ARG_STR: *(const char **)s->dest = v; return 0;
    case ARG_INT: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end) break;
        *(int64_t *)s->dest = x;
        return 0;
    }
    case ARG_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end) break;
        *(double *)s->dest = x;
        return 0;
    }
    case ARG_FLAG: break;
    }
    fprintf(stderr, "mofo %s: --%s: '%s' is not %s\n", cmd, s->name, v,
            s->kind == ARG_INT ? "an integer" : "a number");
    return -1;
}

int args_parse(const char *cmd, int argc, char **argv, const arg_spec *specs, int n_specs) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "mofo %s: unexpected argument '%s' (see 'mofo help %s')\n", cmd, a, cmd);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const arg_spec *s = find(specs, n_specs, name, len);
        if (!s) {
            fprintf(stderr, "mofo %s: unknown flag '--%.*s' (see 'mofo help %s')\n", cmd, (int)len, name, cmd);
            return -1;
        }
        if (s->kind == ARG_FLAG) {
            if (eq) {
                fprintf(stderr, "mofo %s: --%s takes no value\n", cmd, s->name);
                return -1;
            }
            *(int *)s->dest = 1;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mofo %s: --%s needs a value\n", cmd, s->name);
                return -1;
            }
            v = argv[++i];
        }
        if (set_value(cmd, s, v)) return -1;
    }
    return 0;
}

void args_help(FILE *out, const char *cmd, const char *usage, const arg_spec *specs, int n_specs) {
    fprintf(out, "usage: mofo %s %s\n\n", cmd, usage);
    for (int i = 0; i < n_specs; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", specs[i].name, specs[i].meta ? " " : "",
                 specs[i].meta ? specs[i].meta : "");
        fprintf(out, "  %-24s %s\n", left, specs[i].help);
    }
}
