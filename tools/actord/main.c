// SPDX-License-Identifier: MIT
// actord's command line. The signals actord handles are blocked before
// anything else, so that every thread the library and the modules start
// inherits the mask and the main thread alone receives them (node.c).
// Then the configuration is read and every module loaded and checked
// before the system is created: a mistake costs nothing but a message.
#include "actord.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
usage(FILE *to)
{
    fprintf(
        to,
        "Usage: actord --config FILE [--check]\n"
        "       actord --version | --help\n"
        "\n"
        "Runs a troupe node: the system, its distribution listener, its\n"
        "control socket and the applications named in FILE, until\n"
        "SIGTERM or SIGINT stops them in reverse order. SIGHUP reloads\n"
        "FILE.\n"
        "\n"
        "  -c, --config FILE  the configuration (INI; see actord(8))\n"
        "  -t, --check        check FILE and load its modules, start\n"
        "                     nothing, exit 0 when all is well, 78 if not\n"
        "  -V, --version      print the version and exit\n"
        "  -h, --help         print this help and exit\n");
}

typedef struct options {
    const char *config;
    bool check;
} options;

// Returns -1 to go on, or the exit status.
static int
parse_options(int argc, char **argv, options *o)
{
    static const struct option longs[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:tVh", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 't':
            o->check = true;
            break;
        case 'V':
            printf("actord %s (troupe %s, application ABI %d)\n",
                   TP_VERSION_STRING, TP_VERSION_STRING, TP_APP_ABI);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "actord: %s needs a value\n", argv[optind - 1]);
            return EX_USAGE;
        default:
            fprintf(stderr, "actord: unknown option %s (see actord --help)\n",
                    argv[optind - 1]);
            return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "actord: unexpected argument \"%s\"\n", argv[optind]);
        return EX_USAGE;
    }
    if (o->config == NULL) {
        fprintf(stderr, "actord: no configuration: actord --config FILE\n");
        return EX_USAGE;
    }
    return -1;
}

// Loads every application's module, in file order. Returns 0 or the exit
// status, having reported every failure.
static int
load_apps(const ad_config *cfg, ad_app ***out, ad_diag *diag)
{
    ad_app **apps = calloc(cfg->napps ? cfg->napps : 1, sizeof *apps);
    if (apps == NULL)
        return EX_OSERR;
    int rc = 0;
    for (size_t i = 0; i < cfg->napps; i++) {
        int r = ad_app_load(&apps[i], &cfg->apps[i], cfg->path, diag);
        if (r != 0 && rc != EX_OSERR)
            rc = r;
    }
    if (rc != 0) {
        for (size_t i = 0; i < cfg->napps; i++)
            ad_app_free(apps[i]);
        free(apps);
        return rc;
    }
    *out = apps;
    return 0;
}

int
main(int argc, char **argv)
{
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN); // a closed stderr or socket is an error code

    options o = {0};
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0)
        return rc;
    uint64_t watchdog_usec = ad_notify_init();

    ad_diag diag = {0};
    ad_config *cfg = NULL;
    ad_app **apps = NULL;
    rc = ad_config_load(&cfg, o.config, &diag);
    if (rc == 0) {
        ad_log_set_level(cfg->log_level);
        rc = load_apps(cfg, &apps, &diag);
    }
    ad_diag_print(&diag, !o.check);
    ad_diag_free(&diag);
    if (rc != 0) {
        if (!o.check)
            ad_notify("STATUS=Configuration error (exit status %d)", rc);
        ad_config_free(cfg);
        return rc;
    }
    if (o.check) {
        printf("%s: configuration valid: node %s, %zu application%s\n",
               o.config, cfg->name, cfg->napps, cfg->napps == 1 ? "" : "s");
        for (size_t i = 0; i < cfg->napps; i++)
            ad_app_free(apps[i]);
        free(apps);
        ad_config_free(cfg);
        return 0;
    }
    ad_log(TP_LOG_INFO, "starting version=%s config=%s pid=%ld",
           TP_VERSION_STRING, AD_Q(o.config), (long)getpid());
    return ad_node_run(cfg, apps, cfg->napps, &signals, watchdog_usec);
}
