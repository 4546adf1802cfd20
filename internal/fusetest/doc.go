// Package fusetest mounts FUSE filesystems that misbehave on purpose (a
// server that stopped answering, a disk that fails mid-read) for tests.
package fusetest

// Skip32 is why FUSE tests skip on 32-bit: go-fuse does not build there.
const Skip32 = "FUSE tests need go-fuse, which does not compile on 32-bit (v2.12.1, the newest: splice/pair_linux.go assigns syscall.Splice's int to an int64)"
