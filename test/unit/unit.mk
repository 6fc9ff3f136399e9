# SPDX-License-Identifier: MIT
# White-box unit tests of single modules (lib/README.md, "Tests"): the
# mailbox queue, the run queues and epoch reclamation, the side tables and
# the wire codec, in one Check binary. Unlike the suites in test/, these
# are compiled with -Ilib and the runtime's assertion flags, since they
# call tp__ functions and build the runtime's structs themselves; they
# link the static library, so that sched_shim.c, which includes
# lib/core/sched.c to reach its static functions, replaces sched.o.
# `make check` runs the binary through test/unit/run.sh.

UNIT := $(B)/bin/check_unit
UNIT_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(wildcard test/unit/*.c))

CHECK_DEPS += $(UNIT)
CHECK_SCRIPTS += test/unit/run.sh

$(B)/obj/test/unit/%.o: test/unit/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(ASSERT_FLAGS) -Ilib $(CHECK_CFLAGS) \
		-MMD -MP -c $< -o $@

$(UNIT): $(UNIT_OBJ) $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $(UNIT_OBJ) $(STATIC) $(CHECK_LIBS) $(LDLIBS_ALL)

-include $(UNIT_OBJ:.o=.d)
