# SPDX-License-Identifier: MIT
# `make check` runs the layering check: no lib/ subsystem includes the
# header of one above it (lib/README.md, "Who may call whom").
CHECK_SCRIPTS += test/layout.sh
