# SPDX-License-Identifier: MIT
# actord, the node daemon: built with everything, installed with the
# library (binary, man page, systemd unit) and tested by
# tools/actord/test.sh against real actord processes, with the test
# application module (test/testapp.c, built three ways) and a stand-in for
# systemd's notify socket (test/sdnotify.c).
#
# actord links the static library whole and exports its tp_* symbols
# (exports.list), so that the modules it loads call into the same copy of
# the runtime without linking one of their own.

ACTORD := $(B)/bin/actord
ACTORD_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(wildcard tools/actord/*.c))
ACTORD_TDIR := $(B)/test/actord
ACTORD_TOOLS := $(ACTORD_TDIR)/testapp.so $(ACTORD_TDIR)/testapp-v2.so \
	$(ACTORD_TDIR)/nodesc.so \
	$(ACTORD_TDIR)/badabi.so $(ACTORD_TDIR)/sdnotify
INIH_CFLAGS = $(shell pkg-config --cflags inih)
INIH_LIBS = $(shell pkg-config --libs inih)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man

ALL_EXTRA += $(ACTORD)
CHECK_DEPS += $(ACTORD) $(ACTORD_TOOLS) $(B)/bin/actorctl
CHECK_SCRIPTS += tools/actord/test.sh

.PHONY: install-actord uninstall-actord
install: install-actord
uninstall: uninstall-actord

$(B)/obj/tools/actord/%.o: CFLAGS += $(INIH_CFLAGS)
# confval.c checks addresses with the library's parser (lib/io/addr.h,
# which needs only system headers).
$(B)/obj/tools/actord/confval.o: CFLAGS += -Ilib

$(ACTORD): $(ACTORD_OBJ) $(STATIC) tools/actord/exports.list
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $(ACTORD_OBJ) -Wl,--whole-archive $(STATIC) \
		-Wl,--no-whole-archive -Wl,--dynamic-list=tools/actord/exports.list \
		$(INIH_LIBS) -ldl -lm $(LDLIBS_ALL)

# Application modules resolve tp_* against actord when it loads them.
# They are built against every public header: a struct they pass (a child
# spec) may change in any of them.
PUBLIC_H := $(wildcard include/*.h include/troupe/*.h)
$(ACTORD_TDIR)/testapp.so: tools/actord/test/testapp.c $(PUBLIC_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) -fPIC -shared -o $@ $<

$(ACTORD_TDIR)/testapp-v2.so: tools/actord/test/testapp.c $(PUBLIC_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) -DTESTAPP_VERSION=2 -fPIC -shared -o $@ $<

$(ACTORD_TDIR)/nodesc.so: tools/actord/test/testapp.c $(PUBLIC_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) -DTESTAPP_NO_DESCRIPTOR -fPIC -shared -o $@ $<

$(ACTORD_TDIR)/badabi.so: tools/actord/test/testapp.c $(PUBLIC_H)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(BASE_CFLAGS) -DTESTAPP_ABI=99 -fPIC -shared -o $@ $<

$(ACTORD_TDIR)/sdnotify: $(B)/obj/tools/actord/test/sdnotify.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(SAN_FLAGS) $(LDFLAGS)

install-actord: $(ACTORD)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 755 $(ACTORD) $(DESTDIR)$(BINDIR)/
	install -m 644 tools/actord/actord.8 $(DESTDIR)$(MANDIR)/man8/
	sed 's|/usr/local/bin/actord|$(BINDIR)/actord|' \
		tools/actord/actord@.service \
		> $(DESTDIR)$(SYSTEMDUNITDIR)/actord@.service
	chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/actord@.service

uninstall-actord:
	rm -f $(DESTDIR)$(BINDIR)/actord $(DESTDIR)$(MANDIR)/man8/actord.8 \
		$(DESTDIR)$(SYSTEMDUNITDIR)/actord@.service

-include $(ACTORD_OBJ:.o=.d) $(B)/obj/tools/actord/test/sdnotify.d
