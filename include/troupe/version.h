// SPDX-License-Identifier: MIT
// The library's version: the only place it is written down. The Makefile reads
// these three macros to name the shared library and the pkg-config file.
#ifndef TROUPE_VERSION_H
#define TROUPE_VERSION_H

#define TP_VERSION_MAJOR 0
#define TP_VERSION_MINOR 2
#define TP_VERSION_PATCH 0

#define TP_VERSION_STRING "0.2.0"

#endif
