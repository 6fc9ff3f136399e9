// SPDX-License-Identifier: MIT
// A strict JSON checker for actorctl's tests, which cannot count on
// python or jq: it reads standard input and exits 0 when it holds exactly
// one JSON value (RFC 8259: valid UTF-8, no control characters inside
// strings, only the defined escapes), else prints where it went wrong on
// stderr and exits 1.
//
//   actorctl tree --json | ctljson
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEPTH_MAX 256

typedef struct parser {
    const unsigned char *p, *end, *start;
    const char *error;
} parser;

static bool
fail(parser *ps, const char *why)
{
    if (ps->error == NULL)
        ps->error = why;
    return false;
}

static void
skip_space(parser *ps)
{
    while (ps->p < ps->end && strchr(" \t\r\n", *ps->p) != NULL && *ps->p)
        ps->p++;
}

static bool
literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return fail(ps, "unexpected character");
    ps->p += n;
    return true;
}

// One UTF-8 sequence at ps->p that is well formed and not a surrogate.
static bool
utf8(parser *ps)
{
    unsigned char b = *ps->p;
    int len = b < 0xc2 ? 0 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : b < 0xf5 ? 4 : 0;
    if (len == 0 || ps->end - ps->p < len)
        return fail(ps, "invalid UTF-8");
    unsigned cp = b & (0x7f >> len);
    for (int i = 1; i < len; i++) {
        if ((ps->p[i] & 0xc0) != 0x80)
            return fail(ps, "invalid UTF-8");
        cp = cp << 6 | (ps->p[i] & 0x3f);
    }
    static const unsigned min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return fail(ps, "invalid UTF-8");
    ps->p += len;
    return true;
}

static bool
string(parser *ps)
{
    ps->p++; // the opening quote
    while (ps->p < ps->end && *ps->p != '"') {
        if (*ps->p < 0x20)
            return fail(ps, "control character in a string");
        if (*ps->p >= 0x80) {
            if (!utf8(ps))
                return false;
            continue;
        }
        if (*ps->p++ != '\\')
            continue;
        if (ps->p == ps->end)
            break;
        if (*ps->p == 'u') {
            for (int i = 1; i <= 4; i++)
                if (ps->p + i >= ps->end ||
                    strchr("0123456789abcdefABCDEF", ps->p[i]) == NULL ||
                    ps->p[i] == 0)
                    return fail(ps, "bad \\u escape");
            ps->p += 5;
        } else if (strchr("\"\\/bfnrt", *ps->p) != NULL && *ps->p) {
            ps->p++;
        } else {
            return fail(ps, "bad escape");
        }
    }
    if (ps->p == ps->end)
        return fail(ps, "unterminated string");
    ps->p++;
    return true;
}

static bool
digits(parser *ps)
{
    const unsigned char *s = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
        ps->p++;
    return ps->p > s || fail(ps, "digit expected");
}

static bool
number(parser *ps)
{
    if (*ps->p == '-')
        ps->p++;
    if (ps->p < ps->end && *ps->p == '0')
        ps->p++;
    else if (!digits(ps))
        return false;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (!digits(ps))
            return false;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        return digits(ps);
    }
    return true;
}

static bool value(parser *ps, int depth);

// An object or an array: `close` is its closing bracket.
static bool
container(parser *ps, int depth, char close)
{
    ps->p++;
    skip_space(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return true;
    }
    for (;;) {
        skip_space(ps);
        if (close == '}') {
            if (ps->p == ps->end || *ps->p != '"')
                return fail(ps, "member name expected");
            if (!string(ps))
                return false;
            skip_space(ps);
            if (ps->p == ps->end || *ps->p++ != ':')
                return fail(ps, "':' expected");
        }
        if (!value(ps, depth + 1))
            return false;
        skip_space(ps);
        if (ps->p == ps->end)
            return fail(ps, "unterminated object or array");
        if (*ps->p == close) {
            ps->p++;
            return true;
        }
        if (*ps->p++ != ',')
            return fail(ps, "',' expected");
    }
}

static bool
value(parser *ps, int depth)
{
    skip_space(ps);
    if (depth > DEPTH_MAX)
        return fail(ps, "nested too deep");
    if (ps->p == ps->end)
        return fail(ps, "value expected");
    switch (*ps->p) {
    case '{':
        return container(ps, depth, '}');
    case '[':
        return container(ps, depth, ']');
    case '"':
        return string(ps);
    case 't':
        return literal(ps, "true");
    case 'f':
        return literal(ps, "false");
    case 'n':
        return literal(ps, "null");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return number(ps);
        return fail(ps, "value expected");
    }
}

int
main(void)
{
    size_t cap = 1 << 16, len = 0, n;
    unsigned char *buf = malloc(cap);
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, stdin)) > 0) {
        len += n;
        if (len == cap && cap < ((size_t)64 << 20))
            buf = realloc(buf, cap *= 2);
    }
    if (buf == NULL || !feof(stdin)) {
        fprintf(stderr, "ctljson: cannot read the input\n");
        return 1;
    }
    parser ps = {buf, buf + len, buf, NULL};
    bool ok = value(&ps, 0);
    skip_space(&ps);
    if (ok && ps.p != ps.end)
        ok = fail(&ps, "trailing characters");
    if (!ok)
        fprintf(stderr, "ctljson: invalid JSON at byte %zu: %s\n",
                (size_t)(ps.p - ps.start), ps.error);
    free(buf);
    return ok ? 0 : 1;
}
