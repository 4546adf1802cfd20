package ffs

import (
	"testing"
	"unsafe"
)

// struct iocb and struct io_event of <linux/aio_abi.h> are laid out the
// same on every architecture msdav ships to (64 and 32 bytes, aio_buf a
// __u64 even where pointers are 32 bits), and aio_context_t is an
// unsigned long the kernel writes into ctx's low half on 32-bit little
// endian. A field out of place there sends the kernel garbage, so this runs
// under qemu-arm in make crosstest too.
func TestAIOStructLayout(t *testing.T) {
	var cb iocb
	var ev ioEvent
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(iocb)", unsafe.Sizeof(cb), 64},
		{"aio_lio_opcode", unsafe.Offsetof(cb.opcode), 16},
		{"aio_fildes", unsafe.Offsetof(cb.fd), 20},
		{"aio_buf", unsafe.Offsetof(cb.buf), 24},
		{"aio_nbytes", unsafe.Offsetof(cb.nbytes), 32},
		{"aio_offset", unsafe.Offsetof(cb.offset), 40},
		{"aio_flags", unsafe.Offsetof(cb.flags), 56},
		{"aio_resfd", unsafe.Offsetof(cb.resfd), 60},
		{"sizeof(io_event)", unsafe.Sizeof(ev), 32},
		{"io_event.obj", unsafe.Offsetof(ev.obj), 8},
		{"io_event.res", unsafe.Offsetof(ev.res), 16},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, the kernel's is %d", c.name, c.got, c.want)
		}
	}
}
