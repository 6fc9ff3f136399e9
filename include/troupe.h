// SPDX-License-Identifier: MIT
// troupe: an actor runtime for C. This is the header users include; it
// needs no other library's headers. The msgpack helpers (tp_pack_*,
// tp_msg_unpack, tp_pack_pid, tp_unpack_pid) are opt-in: include
// <troupe/msgpack.h> after this header to use them.
#ifndef TROUPE_H
#define TROUPE_H

#ifdef __cplusplus
extern "C" {
#endif

#include "troupe/version.h"
#include "troupe/err.h"
#include "troupe/pid.h"
#include "troupe/system.h"
#include "troupe/actor.h"
#include "troupe/link.h"
#include "troupe/timer.h"
#include "troupe/supervisor.h"
#include "troupe/statem.h"
#include "troupe/node.h"
#include "troupe/group.h"
#include "troupe/introspect.h"
#include "troupe/trace.h"
#include "troupe/test.h"
#include "troupe/upgrade.h"
#include "troupe/sock.h"
#include "troupe/app.h"

#ifdef __cplusplus
}
#endif

#endif
