# msdav — the two everyday commands are `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/msdav
PREFIX   ?= /usr/local
DESTDIR  ?=

.PHONY: all build cross run test vmtest bench install demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/msdav

# The binary for every board msdav runs on: PiKVM OS is 32-bit ARMv7 (v6 on
# the Pi Zero and Pi 1), newer boards arm64, NanoKVM-like ones riscv64; 386
# shares the 32-bit struct layouts and catches the same int32/int64 slips.
CROSS_TARGETS := arm/6 arm/7 arm64 riscv64 386
cross:
	@set -e; for t in $(CROSS_TARGETS); do \
		arch=$${t%%/*}; arm=$${t#*/}; [ "$$arm" = "$$t" ] && arm=; \
		echo "build linux/$$arch$${arm:+ GOARM=$$arm}"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -o /dev/null ./cmd/msdav; \
	done

# Serve ./images on 127.0.0.1:8080, no config needed.
run: build
	./$(BIN) serve

# Unit and integration tests, with the race detector. Tests that need root
# (real mounts) or a Debian package (litmus, rclone, cadaver, davfs2) skip
# with a message saying so; .ci/run installs them and runs as root.
# The race detector needs cgo and a C compiler: without gcc (a machine with
# only Go) the suite still runs, without it, and says so.
RACE ?= $(shell command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)
test:
	@[ -n "$(RACE)" ] || echo "make test: no C compiler ($$($(GO) env CC)), so no race detector; apt-get install gcc for it"
	$(GO) test $(RACE) -count=1 ./...
	cd deploy/vm/nfsd && $(GO) test $(RACE) -count=1 ./...

# The USB gadget on a real kernel: boots Debian's kernel in qemu (TCG) with
# dummy_hcd and checks what the USB host sees. Fetches the kernel with
# apt-get download on first use (deploy/vm/cache).
vmtest:
	$(GO) test -tags vmtest -count=1 -v -timeout 15m ./deploy/vm/

# A VM with msdav serving and the USB gadget live, its port 8080 forwarded to
# 127.0.0.1:$(DEMO_PORT) here. Ctrl-A X quits.
DEMO_PORT ?= 8080
demo:
	MSDAV_DEMO_OUT=$(CURDIR)/deploy/vm/out $(GO) test -tags vmtest -count=1 -run TestBuildDemo ./deploy/vm/
	@echo
	@echo "msdav demo: share and API on http://127.0.0.1:$(DEMO_PORT)/ (open share, no auth)"
	@echo "  rclone:  rclone copy --webdav-url http://127.0.0.1:$(DEMO_PORT)/dav/ --webdav-vendor other my.iso :webdav:"
	@echo "  cadaver: cadaver http://127.0.0.1:$(DEMO_PORT)/dav/"
	@echo "  davfs2:  mount -t davfs http://127.0.0.1:$(DEMO_PORT)/dav/ /mnt"
	@echo "  attach:  curl -X PUT -d '{\"image\":\"demo.iso\",\"cdrom\":true}' http://127.0.0.1:$(DEMO_PORT)/api/drives/0"
	@echo "  state:   curl http://127.0.0.1:$(DEMO_PORT)/api/drives"
	@echo "The VM's console shows the USB drive appearing (sr0/sda). Ctrl-A X quits."
	@echo
	qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -nographic -no-reboot \
		-kernel deploy/vm/out/vmlinuz -initrd deploy/vm/out/demo.cpio.gz \
		-append "console=ttyS0 panic=-1 quiet" \
		-nic user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:$(DEMO_PORT)-:8080

# Side by side on loopback: msdav, nginx (dav + dav_ext), Apache mod_dav,
# rclone serve webdav and plain x/net/webdav, over HTTP and TLS, and msdav's
# fetches against curl, xz and zstd. Installs its peers; needs root for the
# remount measurement; writes BENCHMARKS.md. BENCH_QUICK=1: small sizes;
# BENCH_PROFILE=dir: CPU profiles of msdav per operation, for go tool pprof;
# BENCH_OUT=file: write the report elsewhere; BENCH_VMLOG=file: cite the
# attach-to-visible latencies and drive throughputs of a make vmtest log.
# Outside quick mode it also boots the test VM once (about two minutes) to
# read through both drive backends side by side.
BENCH_OUT ?= BENCHMARKS.md
bench: build
	@(for c in nginx apache2 rclone curl xz zstd openssl chromium strace; do command -v $$c >/dev/null || exit 1; done) || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-extras apache2 rclone curl xz-utils zstd openssl chromium strace >/dev/null)
	CGO_ENABLED=0 $(GO) build -o bin/plain ./bench/plain
	CGO_ENABLED=0 $(GO) build -o bin/bench ./bench/driver
	./bin/bench -msdav bin/msdav -plain bin/plain -out $(BENCH_OUT) $(if $(BENCH_PROFILE),-profile $(BENCH_PROFILE)) $(if $(BENCH_VMLOG),-vmlog $(BENCH_VMLOG))

# Binary, unit and sample config in the usual places; DESTDIR for packagers.
# An existing /etc/msdav/msdav.toml is kept.
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/msdav
	install -D -m 0644 deploy/msdav.service $(DESTDIR)/lib/systemd/system/msdav.service
	sed -i 's#/usr/local/bin/msdav#$(PREFIX)/bin/msdav#' $(DESTDIR)/lib/systemd/system/msdav.service
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/msdav/README.md
	install -D -m 0644 deploy/SETUP.md $(DESTDIR)$(PREFIX)/share/doc/msdav/SETUP.md
	install -d -m 0755 $(DESTDIR)/var/lib/msdav/images
	@if [ -e $(DESTDIR)/etc/msdav/msdav.toml ]; then \
		echo "keeping $(DESTDIR)/etc/msdav/msdav.toml"; \
	else \
		install -D -m 0644 deploy/msdav.toml $(DESTDIR)/etc/msdav/msdav.toml; \
	fi

clean:
	rm -rf bin
