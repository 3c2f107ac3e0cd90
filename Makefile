# Build and install a self-contained dify-batch (no Swift toolchain needed on the target machine).
#
#   make                      release build with the Swift runtime linked statically
#   make install PREFIX=/usr/local [DESTDIR=/tmp/stage]
#       $(DESTDIR)$(PREFIX)/bin/dify-batch
#       $(DESTDIR)$(PREFIX)/share/dify-batch/{dify-batch.service,dify-batch.env.example}
#
# The binary still needs these C libraries from the system: glibc (libc, libm, libpthread, libdl, librt),
# libstdc++ and libgcc_s, libsqlite3 and zlib. `dify-batch --version` prints the version and the git revision
# (written into Sources/dify-batch/BuildInfo.swift for the build, then put back to "unknown").

PREFIX ?= /usr/local
DESTDIR ?=
SWIFT ?= swift
INSTALL ?= install
BUILD_FLAGS ?= -c release --static-swift-stdlib --product dify-batch
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
BUILD_INFO := Sources/dify-batch/BuildInfo.swift

.PHONY: all build install uninstall

all: build

build:
	@sed -i 's/static let revision = ".*"/static let revision = "$(REVISION)"/' $(BUILD_INFO)
	@$(SWIFT) build $(BUILD_FLAGS); status=$$?; \
	  sed -i 's/static let revision = ".*"/static let revision = "unknown"/' $(BUILD_INFO); \
	  exit $$status

install: build
	$(INSTALL) -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/dify-batch
	$(INSTALL) -m 0755 "$$($(SWIFT) build $(BUILD_FLAGS) --show-bin-path)/dify-batch" $(DESTDIR)$(PREFIX)/bin/dify-batch
	$(INSTALL) -m 0644 contrib/dify-batch.service contrib/dify-batch.env.example $(DESTDIR)$(PREFIX)/share/dify-batch/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/dify-batch
	rm -rf $(DESTDIR)$(PREFIX)/share/dify-batch
