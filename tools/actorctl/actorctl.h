// SPDX-License-Identifier: MIT
// actorctl's internal interface. actorctl is a client of the control
// socket protocol (lib/observe/CONTROL.md) and nothing else: it links
// msgpack-c, not libtroupe, so it can inspect a node built from any version
// that speaks the protocol. The modules: conn.c finds the socket and exchanges
// frames, reply.c checks and decodes replies, out.c formats (tables,
// colour, JSON), tree.c, ps.c, cmds.c and trace.c implement the commands,
// main.c parses the command line.
//
// Every function that can fail prints its one-line diagnostic on stderr
// itself and returns the process exit status to use (CTL_*), so callers
// only pass the code up.
#ifndef TROUPE_ACTORCTL_H
#define TROUPE_ACTORCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/un.h>

#include <msgpack.h>

// Exit statuses (documented in actorctl.1). 69 and 77 are sysexits.h's
// EX_UNAVAILABLE and EX_NOPERM.
enum {
    CTL_OK = 0,
    CTL_ERROR = 1,        // the node answered with an error, or a bad reply
    CTL_USAGE = 2,        // bad command line
    CTL_UNREACHABLE = 69, // no socket, nobody listening, no answer in time
    CTL_DENIED = 77,      // the socket or the node refused our user
    CTL_REFUSED = -1,     // internal: the node answered an error (quiet)
};

// Largest reply accepted, in bytes; a longer frame is refused unread. A
// snapshot takes about 200 bytes per actor: this is over a million.
#define CTL_REPLY_MAX ((uint32_t)256 << 20)
// Largest request the protocol allows.
#define CTL_REQUEST_MAX 65536

// ---- diagnostics (out.c) --------------------------------------------------

// Prints "actorctl: " and the formatted text and a newline on stderr, and
// returns `code`.
int ctl_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// While `hold` is true, ctl_fail keeps its lines; setting it false prints
// them. For a full-screen display that would hide them.
void ctl_diag_hold(bool hold);

// ---- the connection (conn.c) ----------------------------------------------

// Which node to talk to, as the command line and environment chose it.
typedef struct ctl_target {
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; // the socket
    char name[128]; // the node's name when chosen by name, else ""
    int timeout_ms; // for each request
} ctl_target;

// Resolves `node` (a name, or NULL) or `socket` (a path, or NULL) into
// `*t`. With neither, $ACTORCTL_SOCKET, else the only socket found in the
// usual directories. Returns CTL_OK or an exit status.
int ctl_target_resolve(ctl_target *t, const char *node, const char *socket);

typedef struct ctl_conn {
    int fd;
    const ctl_target *target;
    const char *about; // what the request is about, for diagnostics, or NULL
    bool quiet;        // an error the node answers is CTL_REFUSED, unprinted
} ctl_conn;

// Names the target of the last ctl_connect for a diagnostic: `node
// "alpha"` or `the node at PATH`.
const char *ctl_who(char *buf, size_t size);

// Connects to the target. Returns CTL_OK, CTL_UNREACHABLE or CTL_DENIED.
int ctl_connect(ctl_conn *c, const ctl_target *t);
void ctl_close(ctl_conn *c);

// A checked, decoded reply. `root` is the top-level map; strings inside it
// point into `buf`, so everything lives until ctl_reply_free.
typedef struct ctl_reply {
    char *buf;
    size_t len;
    msgpack_unpacked up;
    const msgpack_object *root;
} ctl_reply;

void ctl_reply_free(ctl_reply *r);

// Sends the request `req` (a packed msgpack map) and reads its reply into
// `*out`, which the caller frees with ctl_reply_free whatever the result.
// A reply with "ok": false becomes a diagnostic naming the node's error
// and CTL_ERROR (CTL_DENIED for "permission denied").
int ctl_call(ctl_conn *c, const msgpack_sbuffer *req, ctl_reply *out);

// Packs {"op": op} into `sb` (initialised by the caller) and leaves the
// packer ready for more key/value pairs, `extra` of them.
void ctl_request_begin(msgpack_sbuffer *sb, msgpack_packer *pk, const char *op,
                       size_t extra);

// ---- decoding (reply.c) ---------------------------------------------------

// A string inside a reply: not NUL-terminated, may hold any bytes.
typedef struct ctl_str {
    const char *p;
    uint32_t n;
} ctl_str;

bool ctl_str_eq(ctl_str s, const char *c);

// One actor of a snapshot or an info reply, fields named as the protocol.
typedef struct ctl_actor {
    ctl_str pid, parent; // parent.n == 0: nil
    ctl_str name, behaviour, status;
    ctl_str version; // of its code; empty when unlabelled or from older nodes
    uint64_t mailbox, capacity, high_water, handled, dropped, rejected;
    uint64_t restarts, age_ms;
    uint64_t cpu_us; // 0 from a node that does not measure it
    uint64_t
        start_order;  // among siblings; 0 from a node that does not send it
    uint64_t busy_ms; // status "busy": for how long; 0 from older nodes
    // Message waits (0 from a node that does not measure them): how many,
    // median, 99th percentile and longest, in us.
    uint64_t waits, wait_p50_us, wait_p99_us, wait_max_us;
} ctl_actor;

typedef struct ctl_snap {
    ctl_reply reply;
    ctl_str node;
    uint64_t uptime_ms, threads;
    bool cpu_time; // the node measures actors' cpu_us
    size_t n;
    ctl_actor *actors;
    size_t *by_pid; // indexes sorted by pid, built by ctl_snap_find
    // tree --describe: each actor's describe() (malloc'ed), or p == NULL.
    ctl_str *describe;
} ctl_snap;

// Requests a snapshot on `c` and decodes it into `*s` (freed with
// ctl_snap_free whatever the result).
int ctl_snap_get(ctl_conn *c, ctl_snap *s);
void ctl_snap_free(ctl_snap *s);

// The index of the actor with pid `pid` in `s`, or -1.
long ctl_snap_find(ctl_snap *s, ctl_str pid);

// The typed field readers behind the decoders; `where` names the map in
// diagnostics ("actors[3]"). Each returns CTL_OK or CTL_ERROR after printing
// which field is missing or of which wrong type.
const msgpack_object *ctl_field(const msgpack_object *map, const char *key);
int ctl_get_uint(const msgpack_object *map, const char *key, const char *where,
                 uint64_t *out);
int ctl_get_str(const msgpack_object *map, const char *key, const char *where,
                ctl_str *out);
int ctl_get_bool(const msgpack_object *map, const char *key, const char *where,
                 bool *out);
int ctl_get_array(const msgpack_object *map, const char *key,
                  const char *where, const msgpack_object_array **out);
int ctl_get_map(const msgpack_object *map, const char *key, const char *where,
                const msgpack_object **out);
int ctl_bad_reply(const char *where, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// Decodes one ACTOR map.
int ctl_actor_decode(const msgpack_object *m, const char *where,
                     ctl_actor *out);

// Checks the syntax "<N.N.N>" of a pid.
bool ctl_pid_valid(const char *p, size_t n);

// Normalises a pid typed by a user ("<0.4.1>" or "0.4.1") into `buf` as
// "<0.4.1>". Returns false when `text` is no pid.
bool ctl_pid_normalise(const char *text, char *buf, size_t size);

// ---- output (out.c) -------------------------------------------------------

// Set once by main: whether stdout gets colour and UTF-8 box drawing.
extern bool ctl_colour;
extern bool ctl_utf8;

// ANSI SGR sequences, or "" when colour is off.
const char *ctl_sgr(const char *code);
#define SGR_BOLD "1"
#define SGR_DIM "2"
#define SGR_RED "31"
#define SGR_GREEN "32"
#define SGR_YELLOW "33"
#define SGR_CYAN "36"

// A copy of `s` safe to print on a terminal: control characters, and
// bytes that are not UTF-8 (anything beyond ASCII when the locale is not
// UTF-8), become '?'. Never NULL (aborts when out of memory).
char *ctl_clean(ctl_str s);

// Writes `s` as a JSON string (quoted, escaped; bytes that are not UTF-8
// become U+FFFD).
void ctl_json_str(FILE *f, ctl_str s);
void ctl_json_cstr(FILE *f, const char *s);

// Formats a duration in milliseconds as "3d 4h", "2h 05m", "1m 03s",
// "4.2s" or "120ms".
void ctl_duration(char *buf, size_t size, uint64_t ms);
// A run time: "850us", "12ms", "1.53s", then as ctl_duration.
void ctl_cpu_format(char *buf, size_t size, uint64_t us);

// The colour for an actor's status and for a mailbox filled to `depth` of
// `capacity`.
const char *ctl_status_colour(ctl_str status);
// An actor's status for a terminal, "busy 1.2s" for a busy one. The caller
// frees it.
char *ctl_status_text(const ctl_actor *a);
const char *ctl_mailbox_colour(uint64_t depth, uint64_t capacity);

// A table printed with aligned columns: add cells row by row, then print.
// A cell may hold SGR sequences from ctl_sgr; they take no width.
#define CTL_TABLE_COLS 16
typedef struct ctl_table {
    size_t ncols, ncells, cap;
    unsigned right; // bit i: column i is right-aligned
    char **cells;
    const char **colours;
} ctl_table;

void ctl_table_init(ctl_table *t, size_t ncols, unsigned right);
// Appends a cell; `colour` is an SGR code or NULL. Takes ownership of
// `text` (malloc'ed).
void ctl_table_put(ctl_table *t, const char *colour, char *text);
void ctl_table_putf(ctl_table *t, const char *colour, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// Appends a note: a row of one cell printed alone, as wide as it is,
// without widening the first column. Takes ownership of `text`.
void ctl_table_note(ctl_table *t, const char *colour, char *text);
// Prints every row; the first is a header, printed bold. The last column
// is not padded.
void ctl_table_print(const ctl_table *t, FILE *f);
void ctl_table_free(ctl_table *t);

// Writes an actor's protocol fields as JSON members, without the braces.
void ctl_actor_json_fields(FILE *f, const ctl_actor *a);
// Writes {"node":..,"uptime_ms":..,"threads":..,"actors":[ then the
// actors listed in `order` (or all, in snapshot order, when NULL), one per
// line, each with its "describe" when the snapshot has it, and closes the
// document.
void ctl_snap_json(FILE *f, const ctl_snap *s, const size_t *order, size_t n);

// ---- commands
// ---------------------------------------------------------------

// What trace follows (ctl_opts.what), one bit per kind of event, in the
// order of the protocol's names for them (trace.c).
enum {
    CTL_TRACE_RECEIVED = 1u << 0,
    CTL_TRACE_SENT = 1u << 1,
    CTL_TRACE_SIGNALS = 1u << 2,
    CTL_TRACE_LIFE = 1u << 3,
    CTL_TRACE_STATE = 1u << 4,
};

// Options the commands share, from the command line.
typedef struct ctl_opts {
    bool json, dot, describe;
    const char *sort;   // ps
    long count;         // ps -n; top -n (iterations); trace -n (events);
                        // -1 = unset
    double delay;       // top -d, seconds
    const char *reason; // kill
    unsigned what;      // trace: CTL_TRACE_* or'ed; 0 = every kind
    long seconds, rate; // trace --seconds, --rate; -1 = unset
} ctl_opts;

int ctl_cmd_tree(const ctl_target *t, const ctl_opts *o);
int ctl_cmd_ps(const ctl_target *t, const ctl_opts *o);
int ctl_cmd_top(const ctl_target *t, const ctl_opts *o);
int ctl_cmd_info(const ctl_target *t, const ctl_opts *o, const char *who);
int ctl_cmd_kill(const ctl_target *t, const ctl_opts *o, const char *who);
int ctl_cmd_upgrade(const ctl_target *t, const ctl_opts *o, const char *app,
                    const char *module);
// Follows the actor `who` until its trace ends (count, time, its exit, the
// node's shutdown) or until SIGINT or SIGTERM; then the process dies of
// that signal, as an interrupted program should, once its output is out.
int ctl_cmd_trace(const ctl_target *t, const ctl_opts *o, const char *who);
int ctl_cmd_stats(const ctl_target *t, const ctl_opts *o);
int ctl_cmd_nodes(const ctl_target *t, const ctl_opts *o);
// `name`: the one group to show, or NULL for every group.
int ctl_cmd_groups(const ctl_target *t, const ctl_opts *o, const char *name);

// Resolves `who` (a pid, with or without brackets, or a registered name)
// into a pid "<N.N.N>" in `buf`, asking for a snapshot on `c` for a name.
int ctl_resolve_actor(ctl_conn *c, const char *who, char *buf, size_t size);

// Sort keys ps accepts; returns false for an unknown key.
bool ctl_sort_known(const char *key);

#endif
