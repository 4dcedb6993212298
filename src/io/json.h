/* A small JSON reader (RFC 8259) for config.json, tokenizer.json, safetensors headers and JSONL.
 *
 * The whole document lives in one arena owned by mofo_json_doc; nodes point into it. Strings are
 * unescaped to UTF-8 (surrogate pairs joined), NUL-terminated, and carry their length because JSON
 * allows "\u0000" inside them. Numbers keep their source text so integers parse exactly. */
#ifndef MOFO_JSON_H
#define MOFO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "mofo/error.h"

typedef enum {
    MOFO_JSON_NULL,
    MOFO_JSON_BOOL,
    MOFO_JSON_NUMBER,
    MOFO_JSON_STRING,
    MOFO_JSON_ARRAY,
    MOFO_JSON_OBJECT
} mofo_json_type;

typedef struct mofo_json mofo_json;
struct mofo_json {
    mofo_json_type type;
    int boolean;      /* BOOL */
    double number;    /* NUMBER */
    const char *str;  /* STRING: the unescaped value; NUMBER: the source text */
    size_t len;       /* length of str in bytes */
    const char *key;  /* the member name when this node is an object member, else NULL */
    size_t key_len;
    mofo_json *child; /* ARRAY/OBJECT: first element or member */
    mofo_json *next;  /* the next sibling */
    size_t count;     /* ARRAY/OBJECT: number of elements or members */
    int line;         /* 1-based line of the value in the source */
};

typedef struct mofo_json_doc mofo_json_doc;

/* Parses text[0..len). On error returns NULL and records "line L, column C: reason" in err. */
mofo_json_doc *mofo_json_parse(const char *text, size_t len, mofo_err *err);
const mofo_json *mofo_json_root(const mofo_json_doc *doc);
void mofo_json_free(mofo_json_doc *doc);

/* The member named key of an object (first match), or NULL when absent or obj is not an object. */
const mofo_json *mofo_json_get(const mofo_json *obj, const char *key);
/* 1 when node is a number holding an integer that fits in int64 (written without fraction or
 * exponent, or with a fraction of zeros); the value goes to *out. */
int mofo_json_int64(const mofo_json *node, int64_t *out);
/* A JSON type's name for messages ("object", "string", ...). */
const char *mofo_json_type_name(mofo_json_type type);

#endif
