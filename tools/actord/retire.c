// SPDX-License-Identifier: MIT
// Unloading the modules no application runs any more: an application's
// old version once an upgrade replaced it, or its module once it stopped.
// Such a module is closed once nothing in the system may still run its
// code or read its data: no actor runs one of its behaviours, no
// continuation set before an upgrade is pending (tp_code_refs), and no
// child spec of the application's supervisors points into it
// (tp_sup_refs). Until then it is looked at again, at growing intervals.
// What else a module could have left behind (threads, pointers in
// messages) is its own business: app.h tells modules not to.
#include "actord.h"

#include <dlfcn.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>

// A module still in use is looked at again after RETRY_FIRST_MS, then at
// doubling intervals up to RETRY_MAX_MS: each look walks every actor.
#define RETRY_FIRST_MS 250
#define RETRY_MAX_MS 2000

typedef struct ad_retired {
    void *handle;
    char *app, *module, *version;
    uintptr_t lo;
    size_t size;
    tp_pid root; // the running application's root, or nil
    int64_t since_ms, next_ms, every_ms;
    bool told; // logged as still in use
} ad_retired;

typedef struct span {
    uintptr_t base;
    const char *name;
    uintptr_t lo, hi;
    bool found;
} span;

static int
find_span(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    span *s = arg;
    if (info->dlpi_addr != s->base || info->dlpi_name == NULL ||
        strcmp(info->dlpi_name, s->name) != 0)
        return 0;
    for (size_t i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = s->base + ph->p_vaddr;
        uintptr_t hi = lo + ph->p_memsz;
        if (!s->found || lo < s->lo)
            s->lo = lo;
        if (!s->found || hi > s->hi)
            s->hi = hi;
        s->found = true;
    }
    return 1;
}

// The addresses the module `handle` occupies, from its loadable segments.
static bool
module_span(void *handle, uintptr_t *lo, size_t *size)
{
    struct link_map *lm = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL)
        return false;
    span s = {.base = lm->l_addr, .name = lm->l_name};
    dl_iterate_phdr(find_span, &s);
    if (!s.found)
        return false;
    *lo = s.lo;
    *size = s.hi - s.lo;
    return true;
}

static void
retired_free(ad_retired *r)
{
    free(r->app);
    free(r->module);
    free(r->version);
}

void
ad_node_retire(ad_node *n, void *handle, const char *app, const char *module,
               const char *version, tp_pid root)
{
    ad_retired r = {.handle = handle,
                    .root = root,
                    .since_ms = ad_now_ms(),
                    .every_ms = RETRY_FIRST_MS};
    r.next_ms = r.since_ms; // at once: most are free already
    r.app = strdup(app);
    r.module = strdup(module);
    r.version = strdup(version != NULL ? version : "");
    bool ok = r.app != NULL && r.module != NULL && r.version != NULL &&
              module_span(handle, &r.lo, &r.size);
    if (ok && n->nretired == n->capretired) {
        size_t cap = n->capretired ? 2 * n->capretired : 4;
        ad_retired *v = realloc(n->retired, cap * sizeof *v);
        if (v != NULL) {
            n->retired = v;
            n->capretired = cap;
        }
        ok = v != NULL;
    }
    if (!ok) {
        // Kept loaded for good: unloading is never worth a risk.
        ad_log(TP_LOG_WARNING, "app_module_kept app=%s module=%s reason=%s",
               app, AD_Q(module), AD_Q("cannot tell where it is mapped"));
        retired_free(&r);
        return;
    }
    ad_log(TP_LOG_DEBUG, "app_module_retired app=%s module=%s version=%s", app,
           AD_Q(module), AD_Q(r.version));
    // What kept the others may have gone with this one (an application
    // that stopped): all are looked at again at once.
    for (size_t i = 0; i < n->nretired; i++) {
        n->retired[i].next_ms = r.since_ms;
        n->retired[i].every_ms = RETRY_FIRST_MS;
    }
    n->retired[n->nretired++] = r;
}

// Whether `r`'s module may be closed now; logs, once, what keeps it.
static bool
unused(ad_node *n, ad_retired *r)
{
    size_t code = tp_code_refs(n->sys, (const void *)r->lo, r->size);
    size_t specs = 0;
    int rc = 0;
    if (code == 0 && ad_root_is_supervisor(n->sys, r->root)) {
        // Briefly: a root busy stopping children stashes the call, and
        // the next look comes soon.
        rc = tp_sup_refs(n->sys, r->root, (const void *)r->lo, r->size, 250,
                         &specs);
        if (rc == TP_ENOACTOR) // the tree is gone, and its specs with it
            rc = 0, specs = 0;
    }
    if (code == 0 && specs == 0 && rc == 0)
        return true;
    if (!r->told) {
        r->told = true;
        ad_log(TP_LOG_INFO,
               "app_module_in_use app=%s module=%s version=%s code_refs=%zu "
               "spec_refs=%zu%s%s",
               r->app, AD_Q(r->module), AD_Q(r->version), code, specs,
               rc != 0 ? " error=" : "", rc != 0 ? tp_err_name(rc) : "");
    }
    return false;
}

void
ad_node_retire_check(ad_node *n)
{
    int64_t now = ad_now_ms();
    for (size_t i = 0; i < n->nretired;) {
        ad_retired *r = &n->retired[i];
        if (now < r->next_ms) {
            i++;
            continue;
        }
        if (!unused(n, r)) {
            r->next_ms = now + r->every_ms;
            if (r->every_ms < RETRY_MAX_MS)
                r->every_ms *= 2;
            i++;
            continue;
        }
        int rc = dlclose(r->handle);
        ad_log(rc == 0 ? TP_LOG_INFO : TP_LOG_WARNING,
               "app_module_unloaded app=%s module=%s version=%s ms=%lld%s%s",
               r->app, AD_Q(r->module), AD_Q(r->version),
               (long long)(now - r->since_ms), rc != 0 ? " error=" : "",
               rc != 0 ? AD_Q(dlerror()) : "");
        retired_free(r);
        n->retired[i] = n->retired[--n->nretired];
    }
}

int
ad_node_retire_timeout(const ad_node *n)
{
    int64_t next = -1;
    for (size_t i = 0; i < n->nretired; i++)
        if (next < 0 || n->retired[i].next_ms < next)
            next = n->retired[i].next_ms;
    if (next < 0)
        return -1;
    int64_t left = next - ad_now_ms();
    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

void
ad_node_retire_free(ad_node *n)
{
    // The system is gone; the modules stay loaded until the process ends.
    for (size_t i = 0; i < n->nretired; i++)
        retired_free(&n->retired[i]);
    free(n->retired);
    n->retired = NULL;
    n->nretired = n->capretired = 0;
}
