# SPDX-License-Identifier: MIT
# troupe's build. `make` builds the libraries, examples and benchmarks under
# build/; `make check` runs the tests; `make demo` runs the two-node demo
# (examples/demo.sh: actord, actorctl and the kvstore module);
# `make bench` runs the benchmark suite. SAN=address|undefined|thread builds
# everything with that sanitizer under build/san-$(SAN)/. V=1 shows commands.

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DESTDIR ?=

VERSION_H := include/troupe/version.h
MAJOR := $(shell sed -n 's/^\#define TP_VERSION_MAJOR \([0-9]*\)/\1/p' $(VERSION_H))
MINOR := $(shell sed -n 's/^\#define TP_VERSION_MINOR \([0-9]*\)/\1/p' $(VERSION_H))
PATCH := $(shell sed -n 's/^\#define TP_VERSION_PATCH \([0-9]*\)/\1/p' $(VERSION_H))
VERSION := $(MAJOR).$(MINOR).$(PATCH)

ifeq ($(SAN),)
B := build$(if $(DEBUG),/debug)
else
B := build/san-$(SAN)
endif

CC ?= cc
# pkg-config runs when a recipe needs it, after `deps` has installed it.
MSGPACK_PC = $(shell pkg-config --exists msgpack-c && echo msgpack-c || echo msgpack)
MSGPACK_CFLAGS = $(shell pkg-config --cflags $(MSGPACK_PC))
MSGPACK_LIBS = $(shell pkg-config --libs $(MSGPACK_PC))
CRYPTO_LIBS = $(shell pkg-config --libs libssl libcrypto)
CHECK_CFLAGS = $(shell pkg-config --cflags check)
CHECK_LIBS = $(shell pkg-config --libs check)

OPT ?= -O2
SAN_FLAGS :=
ifneq ($(SAN),)
SAN_FLAGS := -fsanitize=$(SAN) -fno-omit-frame-pointer
ifeq ($(SAN),undefined)
SAN_FLAGS += -fno-sanitize-recover=undefined
endif
endif

# Runtime invariants (TP_ASSERT in lib/core/core.h) are checked in
# sanitizer builds and with DEBUG=1, compiled out otherwise.
ASSERT_FLAGS :=
ifneq ($(SAN)$(DEBUG),)
ASSERT_FLAGS := -DTP_ASSERTS
endif

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
BASE_CFLAGS = -std=c11 -D_GNU_SOURCE $(OPT) -g $(WARN) -pthread \
	-Iinclude $(MSGPACK_CFLAGS) $(SAN_FLAGS) $(CFLAGS)
LIB_CFLAGS = $(BASE_CFLAGS) $(ASSERT_FLAGS) -fPIC -fvisibility=hidden -Ilib
LDLIBS_ALL = $(MSGPACK_LIBS) -lev $(CRYPTO_LIBS) -pthread $(SAN_FLAGS) $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Behaviour folders (supervisors/, lib/behaviours/) are part of the library but see
# only the public headers: they are compiled without -Ilib, and
# test/layout.sh fails `make check` if one includes a header from outside
# its own folder and include/.
BEHAVIOUR_DIRS := supervisors lib/behaviours
LIB_SRC := $(filter-out lib/behaviours/%,$(wildcard lib/*/*.c)) \
	$(foreach d,$(BEHAVIOUR_DIRS),$(wildcard $(d)/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
TEST_SRC := $(wildcard test/*.c)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/obj/%.o)
EXAMPLES := $(patsubst examples/%.c,$(B)/bin/%,$(wildcard examples/*.c))
# The kvstore example is also built as an application module for actord,
# in three versions: 1.0, and 2.0 and 3.0 to upgrade it to (actord.8).
KVSTORE_SO := $(B)/bin/kvstore.so $(B)/bin/kvstore-v2.so $(B)/bin/kvstore-v3.so
# So is the cluster example (examples/cluster.sh runs three nodes of it).
CLUSTER_SO := $(B)/bin/cluster.so
BENCH := $(B)/bin/tbench

STATIC := $(B)/lib/libtroupe.a
# While the major version is 0 a minor version may break the API and the
# ABI (0.2 did), so the soname carries it: a program linked against 0.1
# never loads 0.2.
SONAME := libtroupe.so.$(if $(filter 0,$(MAJOR)),$(MAJOR).$(MINOR),$(MAJOR))
SHARED := $(B)/lib/libtroupe.so.$(VERSION)
PCFILE := $(B)/lib/pkgconfig/troupe.pc

.PHONY: all deps demo check check-run install uninstall bench bench-compare \
	bench-scale \
	clean format
.DEFAULT_GOAL := all
.SECONDARY:

# Tools and test directories add their own rules in *.mk files: programs
# to build with everything (ALL_EXTRA), programs the tests need
# (CHECK_DEPS) and scripts `make check` runs after the Check suites
# (CHECK_SCRIPTS, each run as `sh SCRIPT BUILD_DIR`).
ALL_EXTRA :=
CHECK_DEPS :=
CHECK_SCRIPTS :=
include $(sort $(wildcard tools/*/*.mk test/*.mk test/*/*.mk))

all: $(STATIC) $(SHARED) $(PCFILE) $(EXAMPLES) $(KVSTORE_SO) $(CLUSTER_SO) $(BENCH) \
	$(ALL_EXTRA)

deps:
	@sh tools/deps.sh

demo: deps
	@$(MAKE) --no-print-directory $(B)/bin/actord $(B)/bin/actorctl \
		$(KVSTORE_SO) $(B)/bin/kvload
	@sh examples/demo.sh $(B)

check: deps
	@$(MAKE) --no-print-directory check-run

check-run: all $(B)/bin/check_troupe $(B)/bin/tnode $(CHECK_DEPS) \
	$(KVSTORE_SO) $(CLUSTER_SO) $(B)/bin/kvload
	$(B)/bin/check_troupe
	@for t in $(CHECK_SCRIPTS); do echo "  TEST    $$t"; \
		sh $$t $(B) || exit 1; done
	@echo "  TEST    examples/demo.sh"
	@sh examples/demo.sh $(B) >$(B)/demo.log 2>&1 || \
		{ cat $(B)/demo.log; echo "demo failed"; exit 1; }
	@echo "  TEST    examples/cluster.sh"
	@sh examples/cluster.sh $(B) >$(B)/cluster.log 2>&1 || \
		{ cat $(B)/cluster.log; echo "cluster example failed"; exit 1; }
	@echo "  TEST    examples/statem"
	@$(B)/bin/statem >$(B)/statem.log 2>&1 || \
		{ cat $(B)/statem.log; echo "statem example failed"; exit 1; }
ifeq ($(SAN),)
	@sh test/install_test.sh "$(CC)" "$(MAKE)"
endif

$(B)/obj/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(LIB_CFLAGS) -MMD -MP -c $< -o $@

define BEHAVIOUR_RULE
$$(B)/obj/$(1)/%.o: $(1)/%.c
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  CC      $$<")
	$$(Q)$$(CC) $$(BASE_CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c $$< -o $$@
endef
$(foreach d,$(BEHAVIOUR_DIRS),$(eval $(call BEHAVIOUR_RULE,$(d))))

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(BASE_CFLAGS) $(CHECK_CFLAGS) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(SHARED): $(LIB_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS_ALL)
	$(Q)ln -sf libtroupe.so.$(VERSION) $(B)/lib/$(SONAME)
	$(Q)ln -sf $(SONAME) $(B)/lib/libtroupe.so

# troupe.pc.in with this invocation's PREFIX, LIBDIR and INCLUDEDIR filled
# in: `install` writes its own, so the installed .pc names the directories
# of the install command, whatever the build used.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
	-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	-e 's|@MSGPACK@|$(MSGPACK_PC)|g' troupe.pc.in

$(PCFILE): troupe.pc.in $(VERSION_H)
	@mkdir -p $(@D)
	$(Q)$(PC_SED) > $@

$(B)/bin/%: $(B)/obj/examples/%.o $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(STATIC) $(LDLIBS_ALL)

# Resolves tp_* against actord when loaded, like any application module.
$(KVSTORE_SO): $(B)/bin/kvstore%.so: examples/kvstore.c \
		$(wildcard include/*.h include/troupe/*.h)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) -DKVSTORE_MODULE \
		$(if $(subst -v,,$*),-DKVSTORE_VERSION=$(subst -v,,$*)) \
		-fPIC -shared -o $@ $<

$(CLUSTER_SO): examples/cluster.c $(wildcard include/*.h include/troupe/*.h)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) -DCLUSTER_MODULE -fPIC -shared -o $@ $<

$(BENCH): $(B)/obj/tools/bench/tbench.o $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(STATIC) $(LDLIBS_ALL)

$(B)/bin/tnode: $(B)/obj/test/node/tnode.o $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(STATIC) $(LDLIBS_ALL)

# The distribution tests start tnode next to check_troupe.
$(B)/bin/check_troupe: $(TEST_OBJ) $(STATIC) | $(B)/bin/tnode $(B)/bin/kvstore
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $(TEST_OBJ) $(STATIC) $(CHECK_LIBS) $(LDLIBS_ALL)

install: $(STATIC) $(SHARED)
	install -d $(DESTDIR)$(INCLUDEDIR)/troupe $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/troupe.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/troupe/*.h $(DESTDIR)$(INCLUDEDIR)/troupe/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libtroupe.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtroupe.so
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/troupe.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/troupe.pc

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/troupe $(DESTDIR)$(INCLUDEDIR)/troupe.h
	rm -f $(DESTDIR)$(LIBDIR)/libtroupe.* $(DESTDIR)$(LIBDIR)/pkgconfig/troupe.pc

# BENCH_DIST (tools/bench/bench.mk): the distribution benchmarks.
bench: deps
	@$(MAKE) --no-print-directory $(BENCH) $(BENCH_DIST)
	@sh tools/bench/run.sh $(BENCH)
	@echo
	@TDIST=$(B)/bin/tdist TBARE=$(B)/bin/tbare bash tools/bench/dist.sh

# How the scheduler scales from 1 to 16 threads (tools/bench/scale.sh).
bench-scale: deps
	@$(MAKE) --no-print-directory $(BENCH)
	@sh tools/bench/scale.sh $(BENCH)

bench-compare: deps
	@$(MAKE) --no-print-directory $(BENCH) $(BENCH_DIST)
	@TBENCH=$(BENCH) bash tools/bench/compare.sh
	@echo
	@TBENCH=$(BENCH) bash tools/bench/compare.sh -s
	@echo
	@TDIST=$(B)/bin/tdist TBARE=$(B)/bin/tbare bash tools/bench/dist.sh -e

format:
	clang-format -i include/*.h include/troupe/*.h lib/*/*.[ch] test/*.[ch] \
		test/unit/*.[ch] supervisors/*.[ch] lib/behaviours/*.[ch] \
		examples/*.c tools/bench/*.c

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(TEST_OBJ:.o=.d) \
	$(EXAMPLES:$(B)/bin/%=$(B)/obj/examples/%.d) \
	$(B)/obj/tools/bench/tbench.d $(B)/obj/test/node/tnode.d

# ---- fuzzing ----------------------------------------------------------------
# `make fuzz` builds test/fuzz/fuzz_wire.c with libFuzzer and AddressSanitizer
# (clang only; Debian ships libFuzzer in libclang-rt-dev) under build/fuzz/,
# the library compiled there with the same flags, and runs it for
# FUZZ_SECONDS on a scratch copy of the seed corpus test/fuzz/corpus/.
# Inputs that crash land in build/fuzz/crashes/. FUZZ_LEAKS=0 turns off
# LeakSanitizer's checks (each input's and the one at exit); crashes,
# memory errors and the harness's own checks still fail the run.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_LEAKS ?= 1
FUZZ_B := build/fuzz
FUZZ_FLAGS := -fsanitize=fuzzer,address -fno-omit-frame-pointer -g -O1
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) -pthread -Iinclude -Ilib \
	$(MSGPACK_CFLAGS) $(FUZZ_FLAGS)
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_B)/obj/%.o) \
	$(FUZZ_B)/obj/test/fuzz/fuzz_wire.o
FUZZ_BIN := $(FUZZ_B)/fuzz_wire

.PHONY: fuzz fuzz-run
fuzz: deps
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: $(FUZZ_BIN)
	@rm -rf $(FUZZ_B)/corpus && mkdir -p $(FUZZ_B)/corpus $(FUZZ_B)/crashes
	@cp test/fuzz/corpus/* $(FUZZ_B)/corpus/
	ASAN_OPTIONS=detect_leaks=$(FUZZ_LEAKS) $(FUZZ_BIN) \
		-max_total_time=$(FUZZ_SECONDS) -timeout=30 \
		-detect_leaks=$(FUZZ_LEAKS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_B)/crashes/ $(FUZZ_B)/corpus

$(FUZZ_B)/obj/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $< (fuzz)")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BIN): $(FUZZ_OBJ)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(MSGPACK_LIBS) -lev $(CRYPTO_LIBS) \
		-pthread

-include $(FUZZ_OBJ:.o=.d)
