# SPDX-License-Identifier: MIT
# `make check` runs the eight-node mesh (test/mesh.sh): eight actord
# processes on loopback, one node killed, one stopped and resumed.
CHECK_SCRIPTS += test/mesh.sh
CHECK_DEPS += $(B)/bin/actord $(B)/bin/actorctl
