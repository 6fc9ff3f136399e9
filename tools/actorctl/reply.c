// SPDX-License-Identifier: MIT
// Checking and decoding replies. Nothing a node sends is trusted: a frame
// must hold exactly one msgpack object whose declared lengths and counts
// fit in the bytes present (so msgpack-c never allocates for elements
// that are not there), and every field a command uses is looked up by
// name and checked for its type, with a diagnostic naming the field.
#include "actorctl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

// Deepest nesting of arrays and maps accepted in a reply.
#define PACK_DEPTH 32

static uint32_t
be(const unsigned char *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

// Reads the header at p[0..left): the bytes the object itself takes
// (a container's header only) and how many objects it contains. Returns
// -1 for a byte msgpack never uses or a header cut short.
static int
object_header(const unsigned char *p, size_t left, size_t *size,
              uint64_t *items)
{
    unsigned char b = p[0];
    size_t lenbytes = 0, extra = 0;
    *items = 0;
    *size = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0; // fixint, nil, bool
    if (b <= 0x8f || (b >= 0x90 && b <= 0x9f)) {
        *items = (uint64_t)(b & 0x0f) * (b <= 0x8f ? 2 : 1);
        return 0;
    }
    if (b <= 0xbf) {
        *size = 1 + (size_t)(b & 0x1f);
        return 0;
    }
    switch (b) {
    case 0xcc:
    case 0xd0:
        *size = 2;
        return 0;
    case 0xcd:
    case 0xd1:
        *size = 3;
        return 0;
    case 0xca:
    case 0xce:
    case 0xd2:
        *size = 5;
        return 0;
    case 0xcb:
    case 0xcf:
    case 0xd3:
        *size = 9;
        return 0;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        *size = 2 + ((size_t)1 << (b - 0xd4)); // fixext: type + 1..16
        return 0;
    case 0xc4:
    case 0xd9:
        lenbytes = 1;
        break;
    case 0xc5:
    case 0xda:
        lenbytes = 2;
        break;
    case 0xc6:
    case 0xdb:
        lenbytes = 4;
        break;
    case 0xc7:
        lenbytes = 1, extra = 1;
        break;
    case 0xc8:
        lenbytes = 2, extra = 1;
        break;
    case 0xc9:
        lenbytes = 4, extra = 1;
        break;
    case 0xdc:
    case 0xde:
        lenbytes = 2;
        break;
    case 0xdd:
    case 0xdf:
        lenbytes = 4;
        break;
    default:
        return -1; // 0xc1
    }
    if (left < 1 + lenbytes)
        return -1;
    uint32_t len = be(p + 1, lenbytes);
    *size = 1 + lenbytes;
    if (b >= 0xdc)
        *items = (uint64_t)len * (b >= 0xde ? 2 : 1);
    else
        *size += extra + len;
    return 0;
}

int ctl__pack_check(const unsigned char *p, size_t n);

int
ctl__pack_check(const unsigned char *p, size_t n)
{
    uint64_t pending[PACK_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        size_t size;
        uint64_t items;
        if (pos >= n || object_header(p + pos, n - pos, &size, &items) != 0 ||
            size > n - pos)
            return -1;
        pos += size;
        if (items == 0)
            continue;
        // Each element takes at least one byte.
        if (items > n - pos || depth == PACK_DEPTH)
            return -1;
        pending[++depth] = items;
    }
    return pos == n ? 0 : -1;
}

bool
ctl_str_eq(ctl_str s, const char *c)
{
    return strlen(c) == s.n && memcmp(s.p, c, s.n) == 0;
}

int
ctl_bad_reply(const char *where, const char *fmt, ...)
{
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char w[300];
    return ctl_fail(CTL_ERROR, "bad reply from %s: %s %s",
                    ctl_who(w, sizeof w), where, text);
}

static const char *
type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return "an unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "a float";
    case MSGPACK_OBJECT_STR:
        return "a string";
    case MSGPACK_OBJECT_ARRAY:
        return "an array";
    case MSGPACK_OBJECT_MAP:
        return "a map";
    case MSGPACK_OBJECT_BIN:
        return "binary";
    default:
        return "an extension";
    }
}

const msgpack_object *
ctl_field(const msgpack_object *map, const char *key)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t len = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
            memcmp(k->via.str.ptr, key, len) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

// Finds `key` and checks its type. Returns the value or NULL after a
// diagnostic.
static const msgpack_object *
typed(const msgpack_object *map, const char *key, const char *where,
      msgpack_object_type type, const char *expected)
{
    const msgpack_object *v = ctl_field(map, key);
    if (v == NULL) {
        ctl_bad_reply(where, "has no \"%s\"", key);
        return NULL;
    }
    if (v->type != type) {
        char field[200];
        snprintf(field, sizeof field, "%s.%s", where, key);
        ctl_bad_reply(field, "is %s, expected %s", type_name(v), expected);
        return NULL;
    }
    return v;
}

int
ctl_get_uint(const msgpack_object *map, const char *key, const char *where,
             uint64_t *out)
{
    const msgpack_object *v =
        typed(map, key, where, MSGPACK_OBJECT_POSITIVE_INTEGER,
              "an unsigned integer");
    if (v == NULL)
        return CTL_ERROR;
    *out = v->via.u64;
    return CTL_OK;
}

int
ctl_get_str(const msgpack_object *map, const char *key, const char *where,
            ctl_str *out)
{
    const msgpack_object *v =
        typed(map, key, where, MSGPACK_OBJECT_STR, "a string");
    if (v == NULL)
        return CTL_ERROR;
    *out = (ctl_str){v->via.str.ptr, v->via.str.size};
    return CTL_OK;
}

int
ctl_get_bool(const msgpack_object *map, const char *key, const char *where,
             bool *out)
{
    const msgpack_object *v =
        typed(map, key, where, MSGPACK_OBJECT_BOOLEAN, "a boolean");
    if (v == NULL)
        return CTL_ERROR;
    *out = v->via.boolean;
    return CTL_OK;
}

int
ctl_get_array(const msgpack_object *map, const char *key, const char *where,
              const msgpack_object_array **out)
{
    const msgpack_object *v =
        typed(map, key, where, MSGPACK_OBJECT_ARRAY, "an array");
    if (v == NULL)
        return CTL_ERROR;
    *out = &v->via.array;
    return CTL_OK;
}

int
ctl_get_map(const msgpack_object *map, const char *key, const char *where,
            const msgpack_object **out)
{
    *out = typed(map, key, where, MSGPACK_OBJECT_MAP, "a map");
    return *out == NULL ? CTL_ERROR : CTL_OK;
}

// Up to 10 digits: a pid's fields are at most 24 bits wide.
static const char *
digits(const char *p, const char *end)
{
    const char *start = p;
    while (p < end && p - start < 11 && *p >= '0' && *p <= '9')
        p++;
    return p == start || p - start > 10 ? NULL : p;
}

bool
ctl_pid_valid(const char *p, size_t n)
{
    const char *end = p + n;
    if (n < 7 || p[0] != '<' || end[-1] != '>')
        return false;
    p++, end--;
    for (int part = 0; part < 3; part++) {
        if ((p = digits(p, end)) == NULL)
            return false;
        if (part < 2 && (p == end || *p++ != '.'))
            return false;
    }
    return p == end;
}

bool
ctl_pid_normalise(const char *text, char *buf, size_t size)
{
    int n = text[0] == '<' ? snprintf(buf, size, "%s", text)
                           : snprintf(buf, size, "<%s>", text);
    return n > 0 && (size_t)n < size && ctl_pid_valid(buf, (size_t)n);
}

static int
get_pid(const msgpack_object *m, const char *key, const char *where,
        ctl_str *out)
{
    if (ctl_get_str(m, key, where, out) != CTL_OK)
        return CTL_ERROR;
    if (!ctl_pid_valid(out->p, out->n)) {
        char *clean = ctl_clean(*out);
        ctl_bad_reply(where, "has \"%s\": \"%s\", not a pid", key, clean);
        free(clean);
        return CTL_ERROR;
    }
    return CTL_OK;
}

static const struct {
    const char *key;
    size_t offset;
} actor_uints[] = {
    {"mailbox", offsetof(ctl_actor, mailbox)},
    {"capacity", offsetof(ctl_actor, capacity)},
    {"high_water", offsetof(ctl_actor, high_water)},
    {"handled", offsetof(ctl_actor, handled)},
    {"dropped", offsetof(ctl_actor, dropped)},
    {"rejected", offsetof(ctl_actor, rejected)},
    {"restarts", offsetof(ctl_actor, restarts)},
    {"age_ms", offsetof(ctl_actor, age_ms)},
};

int
ctl_actor_decode(const msgpack_object *m, const char *where, ctl_actor *a)
{
    memset(a, 0, sizeof *a);
    if (m->type != MSGPACK_OBJECT_MAP)
        return ctl_bad_reply(where, "is %s, expected a map", type_name(m));
    const msgpack_object *parent = ctl_field(m, "parent");
    if (parent == NULL)
        return ctl_bad_reply(where, "has no \"parent\"");
    if (parent->type != MSGPACK_OBJECT_NIL &&
        get_pid(m, "parent", where, &a->parent) != CTL_OK)
        return CTL_ERROR;
    if (get_pid(m, "pid", where, &a->pid) != CTL_OK ||
        ctl_get_str(m, "name", where, &a->name) != CTL_OK ||
        ctl_get_str(m, "behaviour", where, &a->behaviour) != CTL_OK ||
        ctl_get_str(m, "status", where, &a->status) != CTL_OK)
        return CTL_ERROR;
    for (size_t i = 0; i < sizeof actor_uints / sizeof actor_uints[0]; i++) {
        uint64_t *field = (uint64_t *)((char *)a + actor_uints[i].offset);
        if (ctl_get_uint(m, actor_uints[i].key, where, field) != CTL_OK)
            return CTL_ERROR;
    }
    // Optional: nodes that do not measure it may leave it out.
    if (ctl_field(m, "cpu_us") != NULL &&
        ctl_get_uint(m, "cpu_us", where, &a->cpu_us) != CTL_OK)
        return CTL_ERROR;
    // Optional: older nodes do not send them.
    if (ctl_field(m, "version") != NULL &&
        ctl_get_str(m, "version", where, &a->version) != CTL_OK)
        return CTL_ERROR;
    if (ctl_field(m, "start_order") != NULL &&
        ctl_get_uint(m, "start_order", where, &a->start_order) != CTL_OK)
        return CTL_ERROR;
    if (ctl_field(m, "busy_ms") != NULL &&
        ctl_get_uint(m, "busy_ms", where, &a->busy_ms) != CTL_OK)
        return CTL_ERROR;
    static const char *const waits[] = {"waits", "wait_p50_us", "wait_p99_us",
                                        "wait_max_us"};
    uint64_t *wf[] = {&a->waits, &a->wait_p50_us, &a->wait_p99_us,
                      &a->wait_max_us};
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++)
        if (ctl_field(m, waits[i]) != NULL &&
            ctl_get_uint(m, waits[i], where, wf[i]) != CTL_OK)
            return CTL_ERROR;
    return CTL_OK;
}

int
ctl_snap_get(ctl_conn *c, ctl_snap *s)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    memset(s, 0, sizeof *s);
    ctl_request_begin(&sb, &pk, "snapshot", 0);
    int rc = ctl_call(c, &sb, &s->reply);
    msgpack_sbuffer_destroy(&sb);
    const msgpack_object *r = s->reply.root;
    const msgpack_object_array *actors;
    if (rc != CTL_OK ||
        (rc = ctl_get_str(r, "node", "the snapshot", &s->node)) != CTL_OK ||
        (rc = ctl_get_uint(r, "uptime_ms", "the snapshot", &s->uptime_ms)) !=
            CTL_OK ||
        (rc = ctl_get_uint(r, "threads", "the snapshot", &s->threads)) !=
            CTL_OK ||
        (rc = ctl_get_array(r, "actors", "the snapshot", &actors)) != CTL_OK)
        return rc;
    if (ctl_field(r, "cpu_time") != NULL &&
        (rc = ctl_get_bool(r, "cpu_time", "the snapshot", &s->cpu_time)) !=
            CTL_OK)
        return rc;
    s->actors = calloc(actors->size + 1, sizeof *s->actors);
    if (s->actors == NULL)
        return ctl_fail(CTL_ERROR, "out of memory for %u actors",
                        actors->size);
    for (uint32_t i = 0; i < actors->size; i++) {
        char where[40];
        snprintf(where, sizeof where, "actors[%u]", i);
        if ((rc = ctl_actor_decode(&actors->ptr[i], where, &s->actors[i])) !=
            CTL_OK)
            return rc;
        s->n++;
    }
    return CTL_OK;
}

void
ctl_snap_free(ctl_snap *s)
{
    ctl_reply_free(&s->reply);
    free(s->actors);
    free(s->by_pid);
    for (size_t i = 0; s->describe != NULL && i < s->n; i++)
        free((char *)s->describe[i].p);
    free(s->describe);
    s->describe = NULL;
    s->actors = NULL;
    s->by_pid = NULL;
    s->n = 0;
}

static int
str_cmp(ctl_str a, ctl_str b)
{
    if (a.n != b.n)
        return a.n < b.n ? -1 : 1;
    return memcmp(a.p, b.p, a.n);
}

// qsort has no context argument: the snapshot being indexed.
static const ctl_snap *sorting;

static int
by_pid_cmp(const void *a, const void *b)
{
    return str_cmp(sorting->actors[*(const size_t *)a].pid,
                   sorting->actors[*(const size_t *)b].pid);
}

long
ctl_snap_find(ctl_snap *s, ctl_str pid)
{
    if (s->by_pid == NULL) {
        s->by_pid = malloc((s->n + 1) * sizeof *s->by_pid);
        if (s->by_pid == NULL)
            abort();
        for (size_t i = 0; i < s->n; i++)
            s->by_pid[i] = i;
        sorting = s;
        qsort(s->by_pid, s->n, sizeof *s->by_pid, by_pid_cmp);
    }
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = str_cmp(s->actors[s->by_pid[mid]].pid, pid);
        if (c == 0)
            return (long)s->by_pid[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}
