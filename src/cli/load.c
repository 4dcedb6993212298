#include "load.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/adapter.h"
#include "io/json.h"
#include "text/dataset.h"

#define IDS_SEPARATORS ", \t\n[]" /* "1,2,3", "1 2 3" and a JSON list all parse */

int cli_parse_ids(const char *cmd, const char *flag, const char *s, int **out) {
    int cap = 16, n = 0;
    int *ids = malloc(sizeof(int) * (size_t)cap);
    const char *p = s;
    while (ids && *p) {
        while (*p && strchr(IDS_SEPARATORS, *p)) p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v > INT32_MAX) {
            fprintf(stderr, "mofo %s: --%s: '%.*s' is not a token id\n", cmd, flag, (int)strcspn(p, ","), p);
            free(ids);
            return -1;
        }
        if (*end && !strchr(IDS_SEPARATORS, *end)) {
            fprintf(stderr, "mofo %s: --%s: unexpected '%c' after %ld\n", cmd, flag, *end, v);
            free(ids);
            return -1;
        }
        if (n == cap) {
            int *ni = realloc(ids, sizeof(int) * (size_t)(cap *= 2));
            if (!ni) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = ni;
        }
        ids[n++] = (int)v;
        p = end;
    }
    if (!ids) {
        fprintf(stderr, "mofo %s: out of memory\n", cmd);
        return -1;
    }
    *out = ids;
    return n;
}

int cli_config_eos(const mofo_model *m) {
    if (!m->config_json) return -1;
    mofo_json_doc *doc = mofo_json_parse(m->config_json, m->config_len, NULL);
    if (!doc) return -1;
    const mofo_json *e = mofo_json_get(mofo_json_root(doc), "eos_token_id");
    if (e && e->type == MOFO_JSON_ARRAY) e = e->child;
    int64_t v = -1;
    if (!e || !mofo_json_int64(e, &v) || v < 0 || v > INT32_MAX) v = -1;
    mofo_json_free(doc);
    return (int)v;
}

int cli_parse_device(const char *cmd, const char *name, mofo_device *dev) {
    *dev = MOFO_DEVICE_CPU;
    while (name && strcmp(name, mofo_device_name(*dev)) != 0)
        if ((*dev)++ == MOFO_DEVICE_CUDA) {
            fprintf(stderr, "mofo %s: --device %s: cpu or cuda expected\n", cmd, name);
            return 2;
        }
    return 0;
}

int cli_parse_precision(const char *cmd, const char *name, mofo_precision *p) {
    *p = MOFO_PRECISION_FP32;
    if (name && mofo_precision_parse(name, p)) {
        fprintf(stderr, "mofo %s: --precision %s: fp32, tf32 or bf16 expected\n", cmd, name);
        return 2;
    }
    return 0;
}

int cli_load_model(const char *cmd, const char *dir, const char *adapter_dir, const char *device, const char *precision,
                   mofo_model **out) {
    mofo_err err = {0};
    mofo_model *m = NULL;
    *out = NULL;
    mofo_device dev;
    mofo_precision prec;
    if (cli_parse_device(cmd, device, &dev) || cli_parse_precision(cmd, precision, &prec)) return 2;
    /* with an adapter: merged on the host, then moved; without: straight to the device */
    int rc = adapter_dir ? mofo_model_load(&m, dir, &err) || mofo_adapter_merge(m, adapter_dir, NULL, &err) ||
                               mofo_model_to_device(m, dev, &err)
                         : mofo_model_load_to(&m, dir, dev, &err);
    if (rc || mofo_model_set_precision(m, prec, &err)) {
        fprintf(stderr, "mofo %s: %s\n", cmd, err.msg);
        mofo_model_free(m);
        return 1;
    }
    *out = m;
    return 0;
}

int cli_chat_template(const char *cmd, const char *arg, const char *dir, const mofo_tokenizer *tok, int fallback, int *tpl,
                      mofo_chat **chat) {
    if (chat) *chat = NULL;
    mofo_chat_template t;
    int is_auto = !arg || !strcmp(arg, "auto");
    if (!is_auto && mofo_chat_template_parse(arg, &t)) {
        fprintf(stderr, "mofo %s: --template '%s': use auto, model, tulu, chatml, llama2 or plain\n", cmd, arg);
        return 2;
    }
    if (!is_auto && t != MOFO_TPL_MODEL) {
        *tpl = (int)t;
        return 0;
    }
    mofo_chat *c = NULL;
    mofo_err err = {0};
    if (mofo_chat_load_dir(&c, dir, tok, &err)) {
        fprintf(stderr, "mofo %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (!c && !is_auto) {
        fprintf(stderr, "mofo %s: --template model: %s has no chat template (tokenizer_config.json \"chat_template\" or "
                        "chat_template.jinja)\n", cmd, dir);
        return 2;
    }
    *tpl = c ? (int)MOFO_TPL_MODEL : fallback;
    if (chat) *chat = c;
    else mofo_chat_free(c);
    return 0;
}
