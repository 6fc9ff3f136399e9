#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the white-box unit tests (test/unit/unit.mk) of the build in $1.
set -e
exec "$1/bin/check_unit"
