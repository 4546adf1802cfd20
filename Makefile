# msdav — the two everyday commands are `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/msdav
PREFIX   ?= /usr/local
DESTDIR  ?=

.PHONY: all build cross crosstest package run test vmtest vmtest-armhf bench install demo clean

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

# The unit tests on the boards' architectures, under qemu user mode
# (Debian's qemu-user; binfmt need not be registered: go test -exec runs
# each test binary through qemu-ARCH, and MSDAV_TEST_EXEC names it for a
# test that runs its own binary). No -race: it does not exist there. FUSE
# tests skip on 32-bit (go-fuse does not build there), AIO tests under
# qemu (no io_setup; the VM proves AIO). CI runs arm/7 (PiKVM OS; 32-bit
# layouts) and arm64 side by side, each one package at a time (the two
# cores); CROSSTEST_TARGETS="arm/6 riscv64" runs the others the same way:
# arm6 differs from arm7 in instructions only, riscv64 is 64-bit like
# arm64. -trimpath shares make cross's build cache. Left out:
# bench/ (its driver runs the peers, not msdav's code) and cmd/msdav (its
# tests drive chromium and whole servers: over 6 min alone under
# qemu-arm); its 32-bit risks are in the packages below it. Times
# measured are in .ci/run.
CROSSTEST_TARGETS ?= arm/7 arm64
CROSSTEST_PKGS    ?= $$($(GO) list ./... | grep -v -e /bench/ -e /cmd/msdav$$)
CROSSTEST_OUT     ?= /tmp/msdav-crosstest
crosstest:
	@mkdir -p $(CROSSTEST_OUT); pids=; \
	for t in $(CROSSTEST_TARGETS); do \
		arch=$${t%%/*}; arm=$${t#*/}; [ "$$arm" = "$$t" ] && arm=; \
		case $$arch in arm64) q=qemu-aarch64;; *) q=qemu-$$arch;; esac; \
		command -v $$q >/dev/null || { echo "crosstest: $$q missing (apt-get install qemu-user)"; exit 1; }; \
		log=$(CROSSTEST_OUT)/$$arch$$arm.log; \
		( start=$$(date +%s); \
		  MSDAV_TEST_EXEC=$$q CGO_ENABLED=0 GOOS=linux GOARCH=$$arch GOARM=$$arm $(GO) test -trimpath -exec $$q -count=1 -p 1 -timeout 15m $(CROSSTEST_PKGS) >$$log 2>&1; rc=$$?; \
		  echo "crosstest linux/$$arch$${arm:+ GOARM=$$arm}: exit $$rc in $$(( $$(date +%s) - start )) s ($$log)"; exit $$rc ) & pids="$$pids $$!"; \
	done; rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	[ $$rc = 0 ] || grep -h -B2 -A20 -e '^--- FAIL' -e '^FAIL' $(CROSSTEST_OUT)/*.log | head -200; exit $$rc

# Debian (.deb) and Arch Linux (.pkg.tar.zst; PiKVM OS is Arch ARM)
# packages in bin/package/, built by nfpm (pinned in deploy/package/go.mod;
# why nfpm: deploy/package/nfpm.yaml). Architectures by nfpm's names: arm7
# is Debian's armhf and Arch's armv7h, arm64 Arch's aarch64. The version
# counts commits, so each build upgrades the last.
PACKAGE_ARCHES ?= amd64 arm64 arm7 riscv64
PACKAGE_OUT    ?= bin/package
PKG_VERSION    ?= 0.0.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)
package:
	rm -rf $(PACKAGE_OUT) && mkdir -p $(PACKAGE_OUT)
	cd deploy/package && $(GO) build -o $(abspath $(PACKAGE_OUT))/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm
	sed -e 's#/usr/local/bin/msdav#/usr/bin/msdav#' -e 's#/usr/local/share/doc/#/usr/share/doc/#' \
		-e 's#Install with `make install`#Installed by the msdav package#' deploy/msdav.service >$(PACKAGE_OUT)/msdav.service
	@set -e; for a in $(PACKAGE_ARCHES); do \
		goarch=$$a; goarm=; case $$a in arm6|arm7) goarch=arm; goarm=$${a#arm};; esac; \
		echo "package $$a (GOARCH=$$goarch$${goarm:+ GOARM=$$goarm})"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch GOARM=$$goarm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(PACKAGE_OUT)/$$a/msdav ./cmd/msdav; \
		for f in deb archlinux; do \
			MSDAV_ARCH=$$a MSDAV_PKG_VERSION=$(PKG_VERSION) MSDAV_PKG_STAGE=$(PACKAGE_OUT) \
				$(PACKAGE_OUT)/nfpm package -f deploy/package/nfpm.yaml -p $$f -t $(PACKAGE_OUT)/; \
		done; \
	done

# Serve ./images on 127.0.0.1:8080, no config needed.
run: build
	./$(BIN) serve

# Unit and integration tests, with the race detector. Tests that need root
# (real mounts) or a Debian package (litmus, rclone, cadaver, davfs2) skip
# with a message saying so; .ci/run installs them and runs as root.
test:
	$(GO) test -race -count=1 ./...
	cd deploy/vm/nfsd && $(GO) test -race -count=1 ./...

# The USB gadget on a real kernel: boots Debian's kernel in qemu (TCG) with
# dummy_hcd and checks what the USB host sees. Fetches the kernel with
# apt-get download on first use (deploy/vm/cache).
vmtest:
	$(GO) test -tags vmtest -count=1 -v -timeout 15m ./deploy/vm/

# The same on Debian's armhf kernel (linux-image-armmp) in qemu-system-arm
# -M virt -cpu cortex-a15, msdav built for ARMv7: the kernel backend's CD
# and flash (TestVM; 188 s here, boot 29 s). VMTEST_ARMHF_RUN=
# '^TestUserspaceVM$' for the userspace backend (588 s here: too long for
# CI's budget; the guest tests get 15 minutes there). Tests that copy this
# host's amd64 programs into the guest skip under VM_ARCH=armhf.
VMTEST_ARMHF_RUN ?= ^TestVM$$
vmtest-armhf:
	VM_ARCH=armhf $(GO) test -tags vmtest -count=1 -v -timeout 40m -run '$(VMTEST_ARMHF_RUN)' ./deploy/vm/

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
	@(for c in nginx apache2 rclone curl xz zstd openssl chromium; do command -v $$c >/dev/null || exit 1; done) || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-extras apache2 rclone curl xz-utils zstd openssl chromium >/dev/null)
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
