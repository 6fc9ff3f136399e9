# SPDX-License-Identifier: MIT
# actorctl, the CLI for a running node: built with everything, installed
# with the library (binary, man page, bash completion) and tested by
# tools/actorctl/test.sh against a real node (test/ctlnode.c), a node
# that misbehaves on purpose (test/ctlfake.c) and raw frames (test/ctlraw.c).
# actorctl speaks only the control protocol: it links msgpack-c, not
# libtroupe.

ACTORCTL := $(B)/bin/actorctl
ACTORCTL_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(wildcard tools/actorctl/*.c))
ACTORCTL_TDIR := $(B)/test/actorctl
ACTORCTL_TOOLS := $(ACTORCTL_TDIR)/ctlnode $(ACTORCTL_TDIR)/ctlfake \
	$(ACTORCTL_TDIR)/ctlraw $(ACTORCTL_TDIR)/ctljson
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

ALL_EXTRA += $(ACTORCTL)
CHECK_DEPS += $(ACTORCTL) $(ACTORCTL_TOOLS)
CHECK_SCRIPTS += tools/actorctl/test.sh

.PHONY: install-actorctl uninstall-actorctl
install: install-actorctl
uninstall: uninstall-actorctl

$(ACTORCTL): $(ACTORCTL_OBJ)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $^ $(MSGPACK_LIBS) -lm $(SAN_FLAGS) $(LDFLAGS)

# The test node runs on the library; the other test programs do not.
$(ACTORCTL_TDIR)/ctlnode: $(B)/obj/tools/actorctl/test/ctlnode.o $(STATIC)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(STATIC) $(LDLIBS_ALL)

$(ACTORCTL_TDIR)/%: $(B)/obj/tools/actorctl/test/%.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(MSGPACK_LIBS) $(SAN_FLAGS) $(LDFLAGS)

install-actorctl: $(ACTORCTL)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(ACTORCTL) $(DESTDIR)$(BINDIR)/
	install -m 644 tools/actorctl/actorctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 tools/actorctl/actorctl.bash \
		$(DESTDIR)$(BASHCOMPDIR)/actorctl

uninstall-actorctl:
	rm -f $(DESTDIR)$(BINDIR)/actorctl $(DESTDIR)$(MANDIR)/man1/actorctl.1 \
		$(DESTDIR)$(BASHCOMPDIR)/actorctl

-include $(ACTORCTL_OBJ:.o=.d) \
	$(patsubst %.c,$(B)/obj/%.d,$(wildcard tools/actorctl/test/*.c))
