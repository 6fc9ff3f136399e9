# SPDX-License-Identifier: MIT
# The distribution benchmarks: tdist runs troupe's remote workloads
# between two node processes, tbare the same workloads over plain TCP as a
# baseline. Both are built with everything; tools/bench/dist.sh runs them
# (from `make bench` and `make bench-compare`).

BENCH_DIST := $(B)/bin/tdist $(B)/bin/tbare
ALL_EXTRA += $(BENCH_DIST)

$(B)/bin/tdist: $(B)/obj/tools/bench/tdist.o $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(STATIC) $(LDLIBS_ALL)

# The baseline links nothing of troupe's.
$(B)/bin/tbare: $(B)/obj/tools/bench/tbare.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(SAN_FLAGS) $(LDFLAGS)

-include $(patsubst %,$(B)/obj/tools/bench/%.d,tdist tbare)
