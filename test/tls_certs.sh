#!/bin/sh
# SPDX-License-Identifier: MIT
# Makes the certificates the TLS tests use, in DIR, with the openssl
# command as the README shows: a CA; certificates it signs for nodes a, b
# and c; one for node "old" that expired yesterday; and a second CA, "other",
# with a certificate of its own (trusted by nobody else).
#
#   test/tls_certs.sh DIR
set -eu
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$1.key" 2>/dev/null; }
ca() {
    key "$1"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 3650 \
        -subj "/CN=troupe test $1" 2>/dev/null
}
# cert NAME CA DAYS
cert() {
    key "$1"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
        -CAcreateserial -out "$1.pem" -days "$3" 2>/dev/null
    rm -f "$1.csr"
}
ca ca
ca other
cert a ca 825
cert b ca 825
cert c ca 825
cert old ca -1
cert stranger other 825
