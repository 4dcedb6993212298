/* Unicode 16 general categories for PCRE2 patterns.
 *
 * The tokenizers library matches pre-tokenizer regexes with Oniguruma's Unicode 16.0 tables; Debian
 * 12's PCRE2 10.42 has Unicode 14.0's, so the characters assigned since (new digits, letters, marks,
 * emoji) fall outside \p{L}, \p{N}, ... there and the Llama 3 or Qwen2 regexes split differently
 * around them. mofo_regex_unicode16 rewrites a pattern so that PCRE2 (compiled with PCRE2_UCP)
 * matches the categories as Unicode 16 defines them, by adding to each category escape the code
 * points Unicode 16 added to it (unicode_classes_data.h, from scripts/gen-unicode-classes.mjs):
 *
 *   \p{X} \pX            outside a class -> [\p{X}ADDED]      inside a class -> \p{X}ADDED
 *   \P{X} \PX \p{^X}     outside a class -> [^\p{X}ADDED]     inside a class -> kept as it is
 *   \d (= \p{Nd})        outside a class -> [\dADDED]         inside a class -> \dADDED
 *
 * for the general categories (L, L&, Lu, Ll, Lt, Lm, Lo, M, Mn, Mc, Me, N, Nd, Nl, No, P.., S.., Z..).
 * And \s, \S as Oniguruma has them, the White_Space property: PCRE2's \s (Zs, \h, \v) also takes
 * U+180E MONGOLIAN VOWEL SEPARATOR, which left Zs in Unicode 6.3 (GPT-2's and Llama 3's regexes put
 * it with the spaces around it otherwise):
 *
 *   \s                   outside a class -> [WHITE_SPACE]      inside a class -> WHITE_SPACE
 *   \S                   outside a class -> [^WHITE_SPACE]     inside a class -> its complement, as ranges
 *
 * What it does not change, and so matches with Unicode 14 where 16 differs: a negated category or
 * \D inside a character class (a union cannot take code points out), \w, \b, C and Cn, scripts
 * (\p{Han}, ...), and U+1171E, which left Mn for Mc (it stays in Mn too); nor \h and \v, which are
 * PCRE2's (Oniguruma's \h is a hex digit). Everything else is copied byte for byte (escapes,
 * \Q...\E, POSIX classes). No global state. */
#ifndef MOFO_TEXT_UNICODE_CLASSES_H
#define MOFO_TEXT_UNICODE_CLASSES_H

#include <stddef.h>

#include "io/strbuf.h"

/* pat[0..len) (PCRE2 syntax, UTF-8) rewritten into *out (appended). 0, or MOFO_ENOMEM. */
int mofo_regex_unicode16(const char *pat, size_t len, mofo_strbuf *out);

#endif
