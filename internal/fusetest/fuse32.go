//go:build 386 || arm || mips || mipsle

package fusetest

import "testing"

// Dead skips on 32-bit: see Skip32.
func Dead(t testing.TB, fsName, dir string) (revive func()) {
	t.Helper()
	t.Skip(Skip32)
	return nil
}

// FailingFile skips on 32-bit: see Skip32.
func FailingFile(t testing.TB, dir, name string, size, bad int64) {
	t.Helper()
	t.Skip(Skip32)
}
