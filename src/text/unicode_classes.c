/* Unicode 16 general categories for PCRE2 patterns (see unicode_classes.h). */
#include "text/unicode_classes.h"

#include <string.h>

#include "mofo/error.h"
#include "text/unicode_classes_data.h"

/* \s as Oniguruma has it: the White_Space property (Unicode 16, unchanged since 6.3), and its
 * complement for \S inside a class, where a negation cannot be written. */
static const char WHITE_SPACE[] = "\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";
static const char NOT_WHITE_SPACE[] = "\\x{0}-\\x{8}\\x{E}-\\x{1F}\\x{21}-\\x{84}\\x{86}-\\x{9F}\\x{A1}-\\x{167F}\\x{1681}-\\x{1FFF}"
                                      "\\x{200B}-\\x{2027}\\x{202A}-\\x{202E}\\x{2030}-\\x{205E}\\x{2060}-\\x{2FFF}\\x{3001}-\\x{10FFFF}";

/* the additions of category name[0..n), or NULL when it is not a general category */
static const mofo_ucat_added *find_category(const char *name, size_t n) {
    for (size_t i = 0; i < sizeof MOFO_UCAT_ADDED / sizeof MOFO_UCAT_ADDED[0]; i++)
        if (strlen(MOFO_UCAT_ADDED[i].name) == n && memcmp(MOFO_UCAT_ADDED[i].name, name, n) == 0)
            return &MOFO_UCAT_ADDED[i];
    return NULL;
}

static void put_ranges(mofo_strbuf *out, const mofo_ucat_added *c) {
    for (size_t i = 0; i < c->n; i++) {
        if (c->ranges[i][0] == c->ranges[i][1]) mofo_sb_printf(out, "\\x{%X}", (unsigned)c->ranges[i][0]);
        else mofo_sb_printf(out, "\\x{%X}-\\x{%X}", (unsigned)c->ranges[i][0], (unsigned)c->ranges[i][1]);
    }
}

/* A category escape at p (p[0] == '\\', p[1] == 'p' or 'P', end the pattern's end): its length in
 * bytes, *negated, and the category's additions in *cat (NULL: not a general category, copied as it
 * is). 0 when the escape is malformed (PCRE2 reports it). */
static size_t category_escape(const char *p, const char *end, int *negated, const mofo_ucat_added **cat) {
    *negated = p[1] == 'P';
    *cat = NULL;
    if (p + 2 >= end) return 0;
    if (p[2] != '{') {
        *cat = find_category(p + 2, 1);
        return 3;
    }
    const char *close = memchr(p + 3, '}', (size_t)(end - p - 3));
    if (!close) return 0;
    const char *name = p + 3;
    if (name < close && *name == '^') *negated = !*negated, name++;
    *cat = find_category(name, (size_t)(close - name));
    return (size_t)(close - p) + 1;
}

int mofo_regex_unicode16(const char *pat, size_t len, mofo_strbuf *out) {
    const char *p = pat, *end = pat + len;
    const mofo_ucat_added *nd = find_category("Nd", 2);
    int in_class = 0; /* inside [...] */
    while (p < end) {
        if (*p == '\\' && p + 1 < end && p[1] == 'Q') { /* \Q...\E: literal */
            const char *e = p + 2;
            while (e + 1 < end && !(e[0] == '\\' && e[1] == 'E')) e++;
            e = e + 1 < end ? e + 2 : end;
            mofo_sb_append(out, p, (size_t)(e - p));
            p = e;
        } else if (*p == '\\' && p + 1 < end && (p[1] == 'p' || p[1] == 'P')) {
            int negated;
            const mofo_ucat_added *cat;
            size_t n = category_escape(p, end, &negated, &cat);
            if (n == 0) n = (size_t)(end - p);
            if (!cat || !cat->n || (negated && in_class)) {
                mofo_sb_append(out, p, n);
            } else {
                if (!in_class) mofo_sb_puts(out, negated ? "[^" : "[");
                mofo_sb_printf(out, "\\p{%s}", cat->name);
                put_ranges(out, cat);
                if (!in_class) mofo_sb_puts(out, "]");
            }
            p += n;
        } else if (*p == '\\' && p + 1 < end && p[1] == 'd') {
            mofo_sb_puts(out, in_class ? "\\d" : "[\\d");
            put_ranges(out, nd);
            if (!in_class) mofo_sb_puts(out, "]");
            p += 2;
        } else if (*p == '\\' && p + 1 < end && (p[1] == 's' || p[1] == 'S')) {
            /* White_Space, without the U+180E that PCRE2's \s (with \h) still takes */
            if (p[1] == 's') mofo_sb_printf(out, in_class ? "%s" : "[%s]", WHITE_SPACE);
            else if (in_class) mofo_sb_puts(out, NOT_WHITE_SPACE);
            else mofo_sb_printf(out, "[^%s]", WHITE_SPACE);
            p += 2;
        } else if (*p == '\\') { /* any other escape: two bytes (the rest, as \x{...}, has no escape) */
            size_t n = p + 1 < end ? 2 : 1;
            mofo_sb_append(out, p, n);
            p += n;
        } else if (!in_class && *p == '[') { /* a class opens; a ']' first (after '^') is a literal */
            const char *q = p + 1;
            if (q < end && *q == '^') q++;
            if (q < end && *q == ']') q++;
            mofo_sb_append(out, p, (size_t)(q - p));
            p = q;
            in_class = 1;
        } else if (in_class && *p == '[' && p + 1 < end && p[1] == ':') { /* [:alpha:] */
            const char *e = p + 2;
            while (e + 1 < end && !(e[0] == ':' && e[1] == ']')) e++;
            e = e + 1 < end ? e + 2 : end;
            mofo_sb_append(out, p, (size_t)(e - p));
            p = e;
        } else {
            if (in_class && *p == ']') in_class = 0;
            mofo_sb_append(out, p, 1);
            p++;
        }
    }
    return out->failed ? MOFO_ENOMEM : 0;
}
