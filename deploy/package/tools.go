//go:build tools

// Package tools pins nfpm, the packager make package runs.
package tools

import _ "github.com/goreleaser/nfpm/v2/cmd/nfpm"
