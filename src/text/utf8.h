/* UTF-8 helpers for the tokenizer and the data sets, and reading a whole file. */
#ifndef MOFO_TEXT_UTF8_H
#define MOFO_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "io/strbuf.h"
#include "mofo/error.h"

/* Decodes one character at s[0..n). Returns its length (1..4) and the code point in *cp, or, when
 * the bytes there are not valid UTF-8, minus the length of the maximal invalid subpart (the
 * Unicode "substitution of maximal subparts" rule that Rust's from_utf8_lossy and Python's
 * errors="replace" follow: each subpart becomes one U+FFFD). n must be > 0. */
int mofo_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);
/* 1 when s[0..n) is valid UTF-8; otherwise 0 and the offset of the first bad byte in *bad_at. */
int mofo_utf8_valid(const char *s, size_t n, size_t *bad_at);
/* Appends s[0..n) with each maximal invalid subpart replaced by U+FFFD. */
void mofo_utf8_lossy(mofo_strbuf *out, const char *s, size_t n);
/* mofo_utf8_put (writing one code point) is in io/strbuf.h. */

/* Reads a whole file into a malloc'd, NUL-terminated buffer. */
int mofo_read_file(const char *path, char **data, size_t *len, mofo_err *err);

#endif
