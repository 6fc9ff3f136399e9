// SPDX-License-Identifier: MIT
// Output: diagnostics, colour, tables with aligned columns, JSON. Strings
// from a node are printed only through ctl_clean (terminal) or
// ctl_json_str (JSON), so an actor named with escape sequences or bytes
// that are not UTF-8 cannot rewrite the operator's terminal or break a
// JSON parser.
#include "actorctl.h"

#include <assert.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool ctl_colour;
bool ctl_utf8;

// Diagnostics held back while top owns the screen.
static bool holding;
static char held[2048];

int
ctl_fail(int code, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (holding) {
        size_t used = strlen(held);
        snprintf(held + used, sizeof held - used, "actorctl: %s\n", text);
    } else {
        fflush(stdout);
        fprintf(stderr, "actorctl: %s\n", text);
    }
    return code;
}

void
ctl_diag_hold(bool hold)
{
    holding = hold;
    if (!hold) {
        fputs(held, stderr);
        held[0] = '\0';
    }
}

const char *
ctl_sgr(const char *code)
{
    static char buf[4][16];
    static unsigned next;
    if (!ctl_colour || code == NULL)
        return "";
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "\033[%sm", code);
    return b;
}

// Length of the well-formed UTF-8 sequence at p[0..n) and its code point
// in `*cp`, or 0 when the bytes there are not one.
static size_t
utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = p[0] < 0x80   ? 1
                 : p[0] < 0xc0 ? 0
                 : p[0] < 0xe0 ? 2
                 : p[0] < 0xf0 ? 3
                 : p[0] < 0xf8 ? 4
                               : 0;
    if (len == 0 || len > n)
        return 0;
    uint32_t c = len == 1 ? p[0] : p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3f);
    }
    if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

char *
ctl_clean(ctl_str s)
{
    char *out = malloc((size_t)s.n + 1);
    if (out == NULL)
        abort();
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0, o = 0;
    while (i < s.n) {
        uint32_t cp;
        size_t len = utf8_seq(p + i, s.n - i, &cp);
        bool ok = len > 0 && cp >= 0x20 && cp != 0x7f &&
                  !(cp >= 0x80 && cp < 0xa0) && (ctl_utf8 || cp < 0x80);
        if (!ok) {
            out[o++] = '?';
            i += len > 0 ? len : 1;
            continue;
        }
        memcpy(out + o, p + i, len);
        o += len, i += len;
    }
    out[o] = '\0';
    return out;
}

// Columns a cell takes: one per code point, none for the SGR sequences
// a command put there (cleaned strings from a node hold no ESC).
static size_t
width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++) {
        if (*s == '\033') {
            s += strcspn(s, "m");
            if (*s == '\0')
                break;
            continue;
        }
        w += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return w;
}

void
ctl_json_str(FILE *f, ctl_str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    fputc('"', f);
    for (size_t i = 0; i < s.n;) {
        uint32_t cp;
        size_t len = utf8_seq(p + i, s.n - i, &cp);
        if (len == 0) {
            fputs("\\ufffd", f);
            i++;
        } else if (cp == '"' || cp == '\\') {
            fprintf(f, "\\%c", (char)cp);
            i++;
        } else if (cp < 0x20) {
            fprintf(f, "\\u%04x", (unsigned)cp);
            i++;
        } else {
            fwrite(p + i, 1, len, f);
            i += len;
        }
    }
    fputc('"', f);
}

void
ctl_json_cstr(FILE *f, const char *s)
{
    ctl_json_str(f, (ctl_str){s, (uint32_t)strlen(s)});
}

void
ctl_duration(char *buf, size_t size, uint64_t ms)
{
    uint64_t s = ms / 1000;
    if (ms < 1000)
        snprintf(buf, size, "%ums", (unsigned)ms);
    else if (s < 60)
        snprintf(buf, size, "%.1fs", (double)ms / 1000);
    else if (s < 3600)
        snprintf(buf, size, "%um %02us", (unsigned)(s / 60),
                 (unsigned)(s % 60));
    else if (s < 86400)
        snprintf(buf, size, "%uh %02um", (unsigned)(s / 3600),
                 (unsigned)(s / 60 % 60));
    else
        snprintf(buf, size, "%llud %02uh", (unsigned long long)(s / 86400),
                 (unsigned)(s / 3600 % 24));
}

void
ctl_cpu_format(char *buf, size_t size, uint64_t us)
{
    if (us < 1000)
        snprintf(buf, size, "%uus", (unsigned)us);
    else if (us < 1000000)
        snprintf(buf, size, "%ums", (unsigned)(us / 1000));
    else if (us < 60000000)
        snprintf(buf, size, "%.2fs", (double)us / 1e6);
    else
        ctl_duration(buf, size, us / 1000);
}

const char *
ctl_status_colour(ctl_str status)
{
    if (ctl_str_eq(status, "runnable"))
        return SGR_GREEN;
    if (ctl_str_eq(status, "muted"))
        return SGR_YELLOW;
    if (ctl_str_eq(status, "exiting") || ctl_str_eq(status, "busy"))
        return SGR_RED;
    return NULL;
}

char *
ctl_status_text(const ctl_actor *a)
{
    char *s = ctl_clean(a->status), *out, d[32];
    if (!ctl_str_eq(a->status, "busy"))
        return s;
    ctl_duration(d, sizeof d, a->busy_ms);
    if (asprintf(&out, "%s %s", s, d) < 0)
        abort();
    free(s);
    return out;
}

const char *
ctl_mailbox_colour(uint64_t depth, uint64_t capacity)
{
    if (capacity > 0 && depth >= capacity - capacity / 10)
        return SGR_RED;
    if (capacity > 0 && depth >= capacity / 2)
        return SGR_YELLOW;
    return NULL;
}

void
ctl_table_init(ctl_table *t, size_t ncols, unsigned right)
{
    assert(ncols > 0 && ncols <= CTL_TABLE_COLS);
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->right = right;
}

void
ctl_table_put(ctl_table *t, const char *colour, char *text)
{
    if (t->ncells == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **cells = realloc(t->cells, cap * sizeof *cells);
        const char **colours =
            cells ? realloc(t->colours, cap * sizeof *colours) : NULL;
        if (colours == NULL)
            abort();
        t->cells = cells, t->colours = colours, t->cap = cap;
    }
    t->cells[t->ncells] = text;
    t->colours[t->ncells++] = colour;
}

void
ctl_table_putf(ctl_table *t, const char *colour, const char *fmt, ...)
{
    char *text;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        abort();
    va_end(ap);
    ctl_table_put(t, colour, text);
}

void
ctl_table_note(ctl_table *t, const char *colour, char *text)
{
    ctl_table_put(t, colour, text);
    for (size_t i = 1; i < t->ncols; i++)
        ctl_table_put(t, NULL, NULL);
}

// A row that is a note: its first cell only.
static bool
is_note(const ctl_table *t, size_t row)
{
    return t->ncols > 1 && t->cells[row * t->ncols + 1] == NULL;
}

void
ctl_table_print(const ctl_table *t, FILE *f)
{
    size_t w[CTL_TABLE_COLS] = {0}, nc = t->ncols;
    for (size_t i = 0; i < t->ncells; i++) {
        size_t cw = is_note(t, i / nc) ? 0 : width(t->cells[i]);
        if (cw > w[i % nc])
            w[i % nc] = cw;
    }
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % nc;
        const char *colour = i < nc ? SGR_BOLD : t->colours[i];
        if (is_note(t, i / nc)) {
            if (col == 0)
                fprintf(f, "%s%s%s\n", ctl_sgr(colour), t->cells[i],
                        colour != NULL ? ctl_sgr("0") : "");
            continue;
        }
        size_t pad = w[col] - width(t->cells[i]);
        bool right = t->right >> col & 1, last = col == nc - 1;
        if (right)
            fprintf(f, "%*s", (int)pad, "");
        fprintf(f, "%s%s%s", ctl_sgr(colour), t->cells[i],
                colour != NULL ? ctl_sgr("0") : "");
        if (!right && !last)
            fprintf(f, "%*s", (int)pad, "");
        fputs(last ? "\n" : "  ", f);
    }
}

void
ctl_table_free(ctl_table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->colours);
    memset(t, 0, sizeof *t);
}

void
ctl_actor_json_fields(FILE *f, const ctl_actor *a)
{
    fputs("\"pid\":", f);
    ctl_json_str(f, a->pid);
    fputs(",\"parent\":", f);
    if (a->parent.n == 0)
        fputs("null", f);
    else
        ctl_json_str(f, a->parent);
    fputs(",\"name\":", f);
    ctl_json_str(f, a->name);
    fputs(",\"behaviour\":", f);
    ctl_json_str(f, a->behaviour);
    if (a->version.n > 0) { // only when labelled: the schema stays as it was
        fputs(",\"version\":", f);
        ctl_json_str(f, a->version);
    }
    fputs(",\"status\":", f);
    ctl_json_str(f, a->status);
    fprintf(f,
            ",\"mailbox\":%llu,\"capacity\":%llu,\"high_water\":%llu,"
            "\"handled\":%llu,\"dropped\":%llu,\"rejected\":%llu,"
            "\"restarts\":%llu,\"age_ms\":%llu,\"cpu_us\":%llu,"
            "\"start_order\":%llu,\"busy_ms\":%llu,\"waits\":%llu,"
            "\"wait_p50_us\":%llu,\"wait_p99_us\":%llu,\"wait_max_us\":%llu",
            (unsigned long long)a->mailbox, (unsigned long long)a->capacity,
            (unsigned long long)a->high_water, (unsigned long long)a->handled,
            (unsigned long long)a->dropped, (unsigned long long)a->rejected,
            (unsigned long long)a->restarts, (unsigned long long)a->age_ms,
            (unsigned long long)a->cpu_us, (unsigned long long)a->start_order,
            (unsigned long long)a->busy_ms, (unsigned long long)a->waits,
            (unsigned long long)a->wait_p50_us,
            (unsigned long long)a->wait_p99_us,
            (unsigned long long)a->wait_max_us);
}

void
ctl_snap_json(FILE *f, const ctl_snap *s, const size_t *order, size_t n)
{
    fputs("{\"node\":", f);
    ctl_json_str(f, s->node);
    fprintf(f,
            ",\"uptime_ms\":%llu,\"threads\":%llu,\"cpu_time\":%s,"
            "\"actors\":[",
            (unsigned long long)s->uptime_ms, (unsigned long long)s->threads,
            s->cpu_time ? "true" : "false");
    for (size_t i = 0; i < n; i++) {
        size_t k = order != NULL ? order[i] : i;
        fputs(i == 0 ? "\n{" : ",\n{", f);
        ctl_actor_json_fields(f, &s->actors[k]);
        if (s->describe != NULL && s->describe[k].p != NULL) {
            fputs(",\"describe\":", f);
            ctl_json_str(f, s->describe[k]);
        }
        fputc('}', f);
    }
    fputs("\n]}\n", f);
}
