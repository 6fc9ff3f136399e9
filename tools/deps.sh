#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs what building and testing troupe needs, when it is missing:
# a C compiler, make, pkg-config, libev, msgpack-c, OpenSSL (libssl and
# libcrypto, and the openssl command the TLS tests make certificates with),
# Check and libinih (actord's configuration). Uses apt-get,
# through sudo when not root. Does nothing when everything is present.
set -eu

missing=""
command -v cc >/dev/null 2>&1 || missing="$missing gcc"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
# The TLS tests make their certificates with the openssl command.
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if command -v pkg-config >/dev/null 2>&1; then
    pkg-config --exists msgpack-c || pkg-config --exists msgpack ||
        missing="$missing libmsgpack-dev"
    pkg-config --exists check || missing="$missing check"
    pkg-config --exists libssl libcrypto || missing="$missing libssl-dev"
    pkg-config --exists inih || missing="$missing libinih-dev"
else
    missing="$missing libmsgpack-dev check libssl-dev libinih-dev"
fi
[ -e /usr/include/ev.h ] || [ -e /usr/local/include/ev.h ] ||
    missing="$missing libev-dev"

[ -z "$missing" ] && exit 0

echo "troupe: installing missing packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "troupe: need root or sudo to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
# shellcheck disable=SC2086
$sudo apt-get install -y -q $missing
