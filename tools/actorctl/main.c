// SPDX-License-Identifier: MIT
// actorctl's command line: options that choose the node come before the
// command (as with rabbitmqctl -n), each command's own options after it.
// Help goes to stdout with status 0; a usage error is one line on stderr
// with status 2.
#include "actorctl.h"

#include <ctype.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "troupe/version.h"

typedef struct command {
    const char *name;
    const char *args;    // synopsis after the name
    const char *summary; // one line for the overview
    const char *help;    // the command's options and details
    int nargs_min, nargs_max;
} command;

static const command commands[] = {
    {"tree", "[--describe] [--json | --dot]",
     "the supervision tree: mailboxes, messages, restarts",
     "  --describe under each supervisor, its describe line: strategy,\n"
     "             intensity, period and restarts in the current window\n"
     "  --json     one JSON document: the snapshot's actors in tree order,\n"
     "             one per line, fields named as in the control protocol\n"
     "  --dot      a Graphviz digraph (actorctl tree --dot | dot -Tsvg)\n",
     0, 0},
    {"ps", "[--sort KEY] [-n N] [--json]", "the actors as a table",
     "  --sort KEY  largest first by mailbox, msgs (messages handled),\n"
     "              cpu (time run on scheduler threads), wait (99th\n"
     "              percentile of the time messages waited in the\n"
     "              mailbox), restarts or age (oldest first); default\n"
     "              pid order\n"
     "  -n N        only the first N rows\n"
     "  --json      one JSON document, one actor per line\n",
     0, 0},
    {"top", "[-d SECONDS] [-n COUNT]",
     "the busiest actors by messages per second, live",
     "  -d SECONDS  time between two snapshots (default 1)\n"
     "  -n COUNT    stop after COUNT reports; when stdout is not a\n"
     "              terminal, top prints COUNT (default 1) reports as text\n"
     "  On a terminal: q or Ctrl-C quits.\n",
     0, 0},
    {"info", "PID|NAME [--json]", "everything about one actor",
     "  PID is <0.42.1> or 0.42.1; NAME a registered name.\n"
     "  --json     one JSON object: the actor's fields, trap_exit, links,\n"
     "             monitors, monitored_by, stashed and describe\n",
     1, 1},
    {"trace",
     "PID|NAME [--received] [--sent] [--signals] [--life] [--state] "
     "[-n COUNT] [--seconds S] [--rate R] [--json]",
     "follow one actor's messages, signals and life, live",
     "  One line per event as it happens: the messages the actor receives\n"
     "  (and how long each waited in its mailbox) and sends, the signals\n"
     "  that reach it, the actors it spawns, its exit, its state changes\n"
     "  and notes. Without a kind chosen, every kind:\n"
     "  --received   messages it starts to handle\n"
     "  --sent       messages it sends\n"
     "  --signals    link, unlink, exit, monitor, demonitor and DOWN\n"
     "  --life       the actors it spawns, and its exit\n"
     "  --state      its state changes and notes\n"
     "  -n COUNT     stop after COUNT events, dropped ones included\n"
     "               (1 to 1000000; default 100)\n"
     "  --seconds S  stop after S seconds (1 to 86400; default 60)\n"
     "  --rate R     keep at most R events a second, dropping the rest\n"
     "               (1 to 1000000; default 1000); a line says where\n"
     "               events were dropped\n"
     "  --json       one JSON object per event per line, fields named as\n"
     "               in the control protocol plus the traced \"pid\"; last\n"
     "               {\"end\":WHY,\"recorded\":N,\"dropped\":D}\n"
     "  The trace also stops when the actor exits. Ctrl-C stops it sooner\n"
     "  (within a second); the last line, on stderr, says why it ended.\n",
     1, 1},
    {"kill", "PID|NAME [REASON]", "send an actor an exit signal",
     "  REASON is kill (default; cannot be trapped), shutdown, normal or a\n"
     "  negative error code. Its supervisor, if any, restarts it. Prints\n"
     "  what it did (\"killed <0.5.1> (reason kill)\").\n"
     "  --json     one JSON object: the pid and the reason\n",
     1, 2},
    {"upgrade", "APP MODULE.so [--json]",
     "upgrade a running application to a new module version (actord)",
     "  actord loads MODULE.so beside the running version of application\n"
     "  APP and switches every actor of its behaviours to the new code, its\n"
     "  state converted by the module's code_change, all of them or none;\n"
     "  its supervisors' specs follow (actord.8, \"Upgrading an\n"
     "  application\"). Prints the versions, the actors switched and how\n"
     "  long each was held; a failure (the old version still runs) is an\n"
     "  error. Waits up to 60 s, or --timeout if longer.\n"
     "  --json     one JSON object: the reply's fields\n",
     2, 2},
    {"stats", "[--json]", "the node's counters and its workers",
     "  --json     one JSON object, keys named as in the control protocol\n",
     0, 0},
    {"nodes", "[--json]", "the peers of a distributed node",
     "  --json     one JSON object with the peers, one per line\n", 0, 0},
    {"groups", "[GROUP] [--json]", "the process groups and their members",
     "  A table of every group with members: its members on this node and\n"
     "  in all, and their pids (\"...\" when they do not all fit).\n"
     "  GROUP      that group's members only, one pid per line\n"
     "  --json     one JSON object with the groups, one per line (with\n"
     "             GROUP: that group's object)\n",
     0, 1},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const char global_help[] =
    "Options (before the command; --socket, --node, --timeout and --color\n"
    "may also follow it):\n"
    "  -n, --node NAME      the node whose control socket is NAME.sock in\n"
    "                       $TROUPE_RUNTIME_DIR if set, else in\n"
    "                       $XDG_RUNTIME_DIR/troupe, /tmp/troupe-UID or, for\n"
    "                       root, /run/troupe (the first that exists)\n"
    "  -s, --socket PATH    the control socket itself\n"
    "                       (default: $ACTORCTL_SOCKET, else the only node\n"
    "                       running)\n"
    "  -t, --timeout SECS   how long to wait for each answer (default 5)\n"
    "      --json           machine-readable output: one JSON document\n"
    "      --color WHEN     auto (default: on a terminal), always or never;\n"
    "                       never when NO_COLOR is set\n"
    "  -h, --help           this help; actorctl help COMMAND for a command's\n"
    "  -V, --version        the version\n"
    "\n"
    "Exit status: 0 success, 1 error (no such actor, a bad reply), 2 usage,\n"
    "69 node not running or not answering, 77 permission denied.\n";

static void
usage(FILE *f)
{
    fprintf(f, "Usage: actorctl [-n NODE | --socket PATH] COMMAND [ARGS]\n"
               "\nInspect and steer a running troupe node through its "
               "control socket.\n\nCommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-7s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-7s %s\n\n%s", "help", "this text, or a command's",
            global_help);
}

// Prints a command's synopsis, its options wrapped before a "[" to stay
// within 79 columns.
static void
synopsis(const command *c)
{
    int col = printf("Usage: actorctl [-n NODE | --socket PATH] %s", c->name);
    for (const char *p = c->args; *p != '\0';) {
        const char *next = strstr(p + 1, " [");
        int n = next != NULL ? (int)(next - p) : (int)strlen(p);
        if (col + 1 + n > 79 && p != c->args) {
            fputs("\n      ", stdout);
            col = 6;
        }
        col += printf(" %.*s", n, p);
        p += n + (p[n] == ' ');
    }
    putchar('\n');
}

static void
command_help(const command *c)
{
    synopsis(c);
    printf("\n%c%s.\n\n%s", toupper((unsigned char)c->summary[0]),
           c->summary + 1, c->help);
}

static const command *
command_find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

// Everything the command line chose.
typedef struct cli {
    const char *node, *socket, *colour;
    double timeout;
    const char *args[3];
    int nargs;
    ctl_opts o;
} cli;

// Where an option is valid: bit i for commands[i], and the global place.
#define IN_ALL ((1u << NCOMMANDS) - 1)
#define IN_GLOBAL 0x8000u
#define IN(c) (1u << (c))
enum { TREE, PS, TOP, INFO, TRACE, KILL, UPGRADE, STATS, NODES, GROUPS };
_Static_assert(NCOMMANDS < 15, "a command's bit would be IN_GLOBAL's");

enum {
    OPT_NODE = 1,
    OPT_N,
    OPT_COUNT,
    OPT_SOCKET,
    OPT_TIMEOUT,
    OPT_COLOUR,
    OPT_JSON,
    OPT_DOT,
    OPT_DESCRIBE,
    OPT_SORT,
    OPT_DELAY,
    OPT_RECEIVED, // the kinds of trace, in CTL_TRACE_* order
    OPT_SENT,
    OPT_SIGNALS,
    OPT_LIFE,
    OPT_STATE,
    OPT_SECONDS,
    OPT_RATE,
    OPT_HELP,
    OPT_VERSION,
};

typedef struct optdef {
    const char *lng;
    char shrt;
    bool arg;
    int id;
    unsigned where;
} optdef;

static const optdef options[] = {
    {"node", 0, true, OPT_NODE, IN_GLOBAL | IN_ALL},
    {NULL, 'n', true, OPT_N, IN_GLOBAL | IN_ALL},
    {"count", 0, true, OPT_COUNT, IN(PS) | IN(TOP) | IN(TRACE)},
    {"socket", 's', true, OPT_SOCKET, IN_GLOBAL | IN_ALL},
    {"timeout", 't', true, OPT_TIMEOUT, IN_GLOBAL | IN_ALL},
    {"color", 0, true, OPT_COLOUR, IN_GLOBAL | IN_ALL},
    {"colour", 0, true, OPT_COLOUR, IN_GLOBAL | IN_ALL},
    {"json", 0, false, OPT_JSON, IN_ALL & ~IN(TOP)},
    {"dot", 0, false, OPT_DOT, IN(TREE)},
    {"describe", 0, false, OPT_DESCRIBE, IN(TREE)},
    {"sort", 0, true, OPT_SORT, IN(PS)},
    {"delay", 'd', true, OPT_DELAY, IN(TOP)},
    {"received", 0, false, OPT_RECEIVED, IN(TRACE)},
    {"sent", 0, false, OPT_SENT, IN(TRACE)},
    {"signals", 0, false, OPT_SIGNALS, IN(TRACE)},
    {"life", 0, false, OPT_LIFE, IN(TRACE)},
    {"state", 0, false, OPT_STATE, IN(TRACE)},
    {"seconds", 0, true, OPT_SECONDS, IN(TRACE)},
    {"rate", 0, true, OPT_RATE, IN(TRACE)},
    {"help", 'h', false, OPT_HELP, IN_GLOBAL | IN_ALL},
    {"version", 'V', false, OPT_VERSION, IN_GLOBAL},
};
#define NOPTIONS (sizeof options / sizeof options[0])

// A scan over argv: options, then arguments; "--" ends the options and a
// negative number is an argument (kill's reason).
typedef struct scan {
    int argc, i;
    char **argv;
    bool args_only;
} scan;

enum { SCAN_END, SCAN_ARG, SCAN_OPT, SCAN_ERROR };

static const optdef *
option_find(const char *a, const char **attached)
{
    *attached = NULL;
    for (size_t k = 0; k < NOPTIONS; k++) {
        const optdef *d = &options[k];
        if (a[1] == '-' && d->lng != NULL) {
            size_t len = strcspn(a + 2, "=");
            if (strlen(d->lng) != len || strncmp(a + 2, d->lng, len) != 0)
                continue;
            if (a[2 + len] == '=')
                *attached = a + 3 + len;
            return d;
        }
        if (a[1] != '-' && d->shrt == a[1]) {
            if (a[2] != '\0')
                *attached = a + 2;
            return d;
        }
    }
    return NULL;
}

// The next element; `where` is IN_GLOBAL or the command's bit, `ctx` how
// diagnostics name the place.
static int
scan_next(scan *s, unsigned where, const char *ctx, const optdef **opt,
          const char **val)
{
    if (s->i >= s->argc)
        return SCAN_END;
    const char *a = s->argv[s->i++], *attached;
    *val = a;
    if (strcmp(a, "--") == 0 && !s->args_only) {
        s->args_only = true;
        return scan_next(s, where, ctx, opt, val);
    }
    if (s->args_only || a[0] != '-' || a[1] == '\0' ||
        (a[1] >= '0' && a[1] <= '9'))
        return SCAN_ARG;
    *opt = option_find(a, &attached);
    if (*opt == NULL || !((*opt)->where & where)) {
        ctl_fail(CTL_USAGE, "%s%sunknown option %s (see actorctl %s%s)", ctx,
                 ctx[0] ? ": " : "", a, ctx[0] ? "help " : "--help", ctx);
        return SCAN_ERROR;
    }
    *val = attached;
    if ((*opt)->arg && attached == NULL) {
        if (s->i >= s->argc) {
            ctl_fail(CTL_USAGE, "%s%soption %s needs a value", ctx,
                     ctx[0] ? ": " : "", a);
            return SCAN_ERROR;
        }
        *val = s->argv[s->i++];
    } else if (!(*opt)->arg && attached != NULL) {
        ctl_fail(CTL_USAGE, "%s%soption %.*s takes no value", ctx,
                 ctx[0] ? ": " : "", (int)strcspn(a, "="), a);
        return SCAN_ERROR;
    }
    return SCAN_OPT;
}

static int
number(const char *opt, const char *text, double min, double max, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || !(v >= min && v <= max))
        return ctl_fail(CTL_USAGE,
                        "%s takes a number from %g to %g, not \"%s\"", opt,
                        min, max, text);
    *out = v;
    return CTL_OK;
}

static int
count_option(cli *c, const command *cmd, const char *arg)
{
    double v;
    char opt[16];
    snprintf(opt, sizeof opt, "%s -n", cmd->name);
    if (number(opt, arg, strcmp(cmd->name, "ps") == 0 ? 0 : 1, 1e9, &v) !=
            CTL_OK ||
        v != floor(v))
        return ctl_fail(CTL_USAGE,
                        "%s -n takes a whole count (choose the node before "
                        "the command: actorctl -n NODE %s)",
                        cmd->name, cmd->name);
    c->o.count = (long)v;
    return CTL_OK;
}

// trace's -n, --count, --seconds and --rate: a whole number from 1 to
// `max`, written in decimal digits only.
static int
trace_number(const char *opt, const char *text, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (text[0] >= '0' && text[0] <= '9' && *end == '\0' && errno == 0 &&
        v >= 1 && v <= max) {
        *out = v;
        return CTL_OK;
    }
    // "actorctl trace worker -n alpha": the node chosen in the wrong place.
    bool word = strcmp(opt, "-n") == 0 && strspn(text, "-+.0123456789") == 0;
    return ctl_fail(CTL_USAGE,
                    "trace %s takes a whole number from 1 to %ld, not "
                    "\"%s\"%s",
                    opt, max, text,
                    word ? " (choose the node before the command: actorctl "
                           "-n NODE trace)"
                         : "");
}

static int
sort_option(cli *c, const char *key)
{
    if (!ctl_sort_known(key))
        return ctl_fail(CTL_USAGE,
                        "ps: unknown sort key \"%s\" (mailbox, msgs, cpu, "
                        "wait, restarts, age or pid)",
                        key);
    c->o.sort = key;
    return CTL_OK;
}

// Sentinel: help or the version was printed; exit 0.
#define DONE (-1)

// Applies one option; `cmd` is NULL before the command.
static int
apply(cli *c, const command *cmd, const optdef *d, const char *val)
{
    switch (d->id) {
    case OPT_N:
        if (cmd == &commands[TRACE])
            return trace_number("-n", val, 1000000, &c->o.count);
        if (cmd != NULL && (cmd == &commands[PS] || cmd == &commands[TOP]))
            return count_option(c, cmd, val);
        c->node = val;
        return CTL_OK;
    case OPT_NODE:
        c->node = val;
        return CTL_OK;
    case OPT_COUNT:
        if (cmd == &commands[TRACE])
            return trace_number("--count", val, 1000000, &c->o.count);
        return count_option(c, cmd, val);
    case OPT_SOCKET:
        c->socket = val;
        return CTL_OK;
    case OPT_TIMEOUT:
        return number("--timeout", val, 0.001, 3600, &c->timeout);
    case OPT_COLOUR:
        if (strcmp(val, "auto") && strcmp(val, "always") &&
            strcmp(val, "never"))
            return ctl_fail(CTL_USAGE,
                            "--color takes auto, always or never, not \"%s\"",
                            val);
        c->colour = val;
        return CTL_OK;
    case OPT_JSON:
        c->o.json = true;
        return CTL_OK;
    case OPT_DOT:
        c->o.dot = true;
        return CTL_OK;
    case OPT_DESCRIBE:
        c->o.describe = true;
        return CTL_OK;
    case OPT_SORT:
        return sort_option(c, val);
    case OPT_DELAY:
        return number("top -d", val, 0.05, 3600, &c->o.delay);
    case OPT_RECEIVED:
    case OPT_SENT:
    case OPT_SIGNALS:
    case OPT_LIFE:
    case OPT_STATE:
        c->o.what |= 1u << (d->id - OPT_RECEIVED);
        return CTL_OK;
    case OPT_SECONDS:
        return trace_number("--seconds", val, 86400, &c->o.seconds);
    case OPT_RATE:
        return trace_number("--rate", val, 1000000, &c->o.rate);
    case OPT_HELP:
        if (cmd != NULL)
            command_help(cmd);
        else
            usage(stdout);
        return DONE;
    default:
        printf("actorctl (troupe) %s\n", TP_VERSION_STRING);
        return DONE;
    }
}

// Options before the command, then the command word in `*word`.
static int
parse_global(cli *c, scan *s, const char **word)
{
    const optdef *d;
    const char *val;
    int k, rc;
    while ((k = scan_next(s, IN_GLOBAL, "", &d, &val)) == SCAN_OPT)
        if ((rc = apply(c, NULL, d, val)) != CTL_OK)
            return rc;
    if (k == SCAN_ERROR)
        return CTL_USAGE;
    *word = k == SCAN_ARG ? val : NULL;
    return CTL_OK;
}

static int
parse_command(cli *c, const command *cmd, scan *s)
{
    const optdef *d;
    const char *val;
    int k, rc;
    unsigned bit = IN((unsigned)(cmd - commands));
    while ((k = scan_next(s, bit, cmd->name, &d, &val)) != SCAN_END) {
        if (k == SCAN_ERROR)
            return CTL_USAGE;
        if (k == SCAN_OPT && (rc = apply(c, cmd, d, val)) != CTL_OK)
            return rc;
        if (k == SCAN_ARG && c->nargs == cmd->nargs_max)
            return ctl_fail(CTL_USAGE, "%s: unexpected argument \"%s\"",
                            cmd->name, val);
        if (k == SCAN_ARG)
            c->args[c->nargs++] = val;
    }
    if (c->nargs < cmd->nargs_min)
        return ctl_fail(CTL_USAGE, "%s: which %s? (actorctl %s %s)", cmd->name,
                        cmd == &commands[UPGRADE] ? "application and module"
                                                  : "actor",
                        cmd->name, cmd->args);
    if (c->o.json && c->o.dot)
        return ctl_fail(CTL_USAGE, "tree: choose --json or --dot, not both");
    return CTL_OK;
}

static int
help_command(scan *s)
{
    if (s->i >= s->argc) {
        usage(stdout);
        return CTL_OK;
    }
    const command *cmd = command_find(s->argv[s->i]);
    if (cmd == NULL || s->i + 1 < s->argc)
        return ctl_fail(CTL_USAGE,
                        "help: no command \"%s\" (see actorctl "
                        "--help)",
                        s->argv[s->i]);
    command_help(cmd);
    return CTL_OK;
}

static void
choose_output(const cli *c)
{
    const char *no = getenv("NO_COLOR"), *term = getenv("TERM");
    bool tty =
        isatty(STDOUT_FILENO) && !(term != NULL && strcmp(term, "dumb") == 0);
    bool want = c->colour == NULL || strcmp(c->colour, "auto") == 0
                    ? tty
                    : strcmp(c->colour, "always") == 0;
    ctl_colour = want && (no == NULL || no[0] == '\0');
    setlocale(LC_CTYPE, "");
    ctl_utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
}

static int
run(const command *cmd, const cli *c)
{
    ctl_target t;
    t.timeout_ms = (int)ceil(c->timeout * 1000);
    int rc = ctl_target_resolve(&t, c->node, c->socket);
    if (rc != CTL_OK)
        return rc;
    switch (cmd - commands) {
    case TREE:
        return ctl_cmd_tree(&t, &c->o);
    case PS:
        return ctl_cmd_ps(&t, &c->o);
    case TOP:
        return ctl_cmd_top(&t, &c->o);
    case INFO:
        return ctl_cmd_info(&t, &c->o, c->args[0]);
    case TRACE:
        return ctl_cmd_trace(&t, &c->o, c->args[0]);
    case KILL: {
        ctl_opts o = c->o;
        o.reason = c->args[1];
        return ctl_cmd_kill(&t, &o, c->args[0]);
    }
    case UPGRADE:
        return ctl_cmd_upgrade(&t, &c->o, c->args[0], c->args[1]);
    case STATS:
        return ctl_cmd_stats(&t, &c->o);
    case NODES:
        return ctl_cmd_nodes(&t, &c->o);
    default:
        return ctl_cmd_groups(&t, &c->o, c->args[0]);
    }
}

int
main(int argc, char **argv)
{
    cli c = {.timeout = 5,
             .o = {.count = -1, .delay = 1, .seconds = -1, .rate = -1}};
    scan s = {.argc = argc, .i = 1, .argv = argv};
    const char *word;
    int rc = parse_global(&c, &s, &word);
    if (rc != CTL_OK)
        return rc == DONE ? CTL_OK : rc;
    if (word == NULL) {
        usage(stderr);
        return CTL_USAGE;
    }
    if (strcmp(word, "help") == 0)
        return help_command(&s);
    const command *cmd = command_find(word);
    if (cmd == NULL)
        return ctl_fail(CTL_USAGE,
                        "unknown command \"%s\" (see actorctl --help)", word);
    rc = parse_command(&c, cmd, &s);
    if (rc != CTL_OK)
        return rc == DONE ? CTL_OK : rc;
    choose_output(&c);
    rc = run(cmd, &c);
    if (fflush(stdout) != 0 || ferror(stdout))
        return ctl_fail(CTL_ERROR, "writing the output failed");
    return rc;
}
