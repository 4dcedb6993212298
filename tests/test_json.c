/* The JSON reader: values, escapes, and the messages for malformed input. */
#include <string.h>

#include "check.h"
#include "io/json.h"
#include "io/strbuf.h"

static mofo_json_doc *parse(const char *s, mofo_err *err) { return mofo_json_parse(s, strlen(s), err); }

static void test_values(void) {
    mofo_err err = {0};
    mofo_json_doc *d = parse(" {\"a\": [1, -2.5e3, true, false, null], \"b\": {\"c\": \"x\\ny\"}, \"n\": 9007199254740993} ", &err);
    CHECK(d != NULL, "%s", err.msg);
    if (!d) return;
    const mofo_json *r = mofo_json_root(d);
    CHECK(r->type == MOFO_JSON_OBJECT && r->count == 3, "root");
    const mofo_json *a = mofo_json_get(r, "a");
    CHECK(a && a->type == MOFO_JSON_ARRAY && a->count == 5, "array");
    int64_t v = 0;
    CHECK(mofo_json_int64(a->child, &v) && v == 1, "int 1");
    CHECK(a->child->next->number == -2500.0 && !mofo_json_int64(a->child->next, &v), "-2.5e3 is not an int");
    CHECK(a->child->next->next->type == MOFO_JSON_BOOL && a->child->next->next->boolean == 1, "true");
    CHECK(a->child->next->next->next->next->type == MOFO_JSON_NULL, "null");
    const mofo_json *c = mofo_json_get(mofo_json_get(r, "b"), "c");
    CHECK(c && c->len == 3 && memcmp(c->str, "x\ny", 3) == 0, "escape \\n");
    /* integers beyond 2^53 stay exact */
    CHECK(mofo_json_int64(mofo_json_get(r, "n"), &v) && v == 9007199254740993LL, "big int %lld", (long long)v);
    CHECK(mofo_json_get(r, "zz") == NULL, "missing key");
    mofo_json_free(d);
}

static void test_unicode(void) {
    mofo_err err = {0};
    /* \u00e9 = é (2 bytes), \ud83d\ude00 = U+1F600 (4 bytes), \u0000 inside a string */
    mofo_json_doc *d = parse("[\"\\u00e9\", \"\\ud83d\\ude00\", \"a\\u0000b\", \"\\ud800x\"]", &err);
    CHECK(d != NULL, "%s", err.msg);
    if (!d) return;
    const mofo_json *e = mofo_json_root(d)->child;
    CHECK(e->len == 2 && memcmp(e->str, "\xc3\xa9", 2) == 0, "e-acute");
    e = e->next;
    CHECK(e->len == 4 && memcmp(e->str, "\xf0\x9f\x98\x80", 4) == 0, "surrogate pair");
    e = e->next;
    CHECK(e->len == 3 && e->str[1] == '\0', "embedded NUL");
    e = e->next;
    CHECK(e->len == 4 && memcmp(e->str, "\xef\xbf\xbdx", 4) == 0, "lone surrogate becomes U+FFFD");
    mofo_json_free(d);
}

static void expect_error(const char *text, const char *needle) {
    mofo_err err = {0};
    mofo_json_doc *d = parse(text, &err);
    CHECK(d == NULL, "'%s' should not parse", text);
    CHECK(err.code == MOFO_EFORMAT && strstr(err.msg, needle), "'%s': message '%s' lacks '%s'", text, err.msg, needle);
    mofo_json_free(d);
}

static void test_errors(void) {
    expect_error("", "unexpected end of input");
    expect_error("{\"a\": 1,}", "line 1, column 9: expected a member name");
    expect_error("[1, 2", "unterminated array");
    expect_error("{\n\"a\" 1}", "line 2, column 5: expected ':'");
    expect_error("\"abc", "unterminated string");
    expect_error("\"a\\qb\"", "unknown escape");
    expect_error("01", "unexpected text after");
    expect_error("-", "bad number");
    expect_error("1.", "bad fraction");
    expect_error("[tru]", "unexpected character");
    expect_error("{} x", "unexpected text after");
    expect_error("\"a\nb\"", "control character");
    char deep[2000];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    expect_error(deep, "nesting too deep");
}

static void test_writer(void) {
    mofo_strbuf sb = {0};
    mofo_sb_json_string(&sb, "a\"b\\c\n\x01", 7);
    CHECK(strcmp(sb.data, "\"a\\\"b\\\\c\\n\\u0001\"") == 0, "escaped: %s", sb.data);
    /* what we write parses back to the same bytes */
    mofo_err err = {0};
    mofo_json_doc *d = mofo_json_parse(sb.data, sb.len, &err);
    CHECK(d && mofo_json_root(d)->len == 7 && memcmp(mofo_json_root(d)->str, "a\"b\\c\n\x01", 7) == 0, "round trip");
    mofo_json_free(d);
    mofo_sb_free(&sb);
}

int main(void) {
    test_values();
    test_unicode();
    test_errors();
    test_writer();
    return CHECK_DONE();
}
