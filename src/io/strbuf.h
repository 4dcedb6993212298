/* A growable byte buffer for building text (JSON headers, messages, output lines). */
#ifndef MOFO_STRBUF_H
#define MOFO_STRBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct mofo_strbuf {
    char *data; /* NUL-terminated while ok; NULL until the first append */
    size_t len;
    size_t cap;
    int failed; /* an allocation failed: later appends do nothing */
} mofo_strbuf;

void mofo_sb_append(mofo_strbuf *sb, const char *bytes, size_t n);
void mofo_sb_puts(mofo_strbuf *sb, const char *s);
void mofo_sb_printf(mofo_strbuf *sb, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Appends s (n bytes) as a quoted JSON string with the escapes JSON requires. */
void mofo_sb_json_string(mofo_strbuf *sb, const char *s, size_t n);
void mofo_sb_free(mofo_strbuf *sb);

/* Writes the code point cp as UTF-8 into o (room for 4 bytes); returns the length. */
size_t mofo_utf8_put(char *o, uint32_t cp);

#endif
