# msdav — the two everyday commands are `make run` and `make test`.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/msdav
PREFIX   ?= /usr/local
DESTDIR  ?=

.PHONY: all build run test vmtest bench install demo clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/msdav

# Serve ./images on 127.0.0.1:8080, no config needed.
run: build
	./$(BIN) serve

# Unit and integration tests, with the race detector. Tests that need root
# (real mounts) or a Debian package (litmus, rclone, cadaver, davfs2) skip
# with a message saying so; .ci/run installs them and runs as root.
test:
	$(GO) test -race -count=1 ./...

# The USB gadget on a real kernel: boots Debian's kernel in qemu (TCG) with
# dummy_hcd and checks what the USB host sees. Fetches the kernel with
# apt-get download on first use (deploy/vm/cache).
vmtest:
	$(GO) test -tags vmtest -count=1 -v -timeout 15m ./deploy/vm/

clean:
	rm -rf bin
